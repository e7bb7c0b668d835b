"""Entity ids: an entity is addressed by a name and a key, and lives under the instance id
``@name@key`` with its name lower-cased, as Durable Functions spells it (ADR 38)."""

from __future__ import annotations

from dataclasses import dataclass

from contracts.limits import check_instance_id

ENTITY_ID_PREFIX = "@"


@dataclass(frozen=True)
class EntityId:
    """An entity's name and key (azure-functions-durable's ``EntityId``).

    Attributes:
        name: the entity function's name (case does not matter: the id lower-cases it).
        key: which entity of that function; case is kept.
    """

    name: str
    key: str

    def __post_init__(self) -> None:
        if not self.name or ENTITY_ID_PREFIX in self.name:
            raise ValueError(f"an entity name must be non-empty and hold no '@': {self.name!r}")
        if self.key == "":
            raise ValueError("an entity key cannot be empty")

    @property
    def instance_id(self) -> str:
        """``@name@key``: the id of the entity's row and stream, and of its partition."""
        return f"{ENTITY_ID_PREFIX}{self.name.lower()}{ENTITY_ID_PREFIX}{self.key}"

    @classmethod
    def of(cls, entity: object) -> EntityId:
        """An ``EntityId`` from ours, azure-functions-durable's (``name`` and ``key``
        attributes) or an ``@name@key`` string; the id is checked as any instance id."""
        if isinstance(entity, EntityId):
            found = entity
        elif isinstance(entity, str):
            found = cls.parse(entity)
        else:
            name, key = getattr(entity, "name", None), getattr(entity, "key", None)
            if not isinstance(name, str) or not isinstance(key, str):
                raise TypeError(f"expected an EntityId, got {type(entity).__name__}")
            found = cls(name, key)
        # The same rules as any instance id, but for the leading '@' that marks an entity.
        check_instance_id(found.instance_id[1:], "an entity id")
        return found

    @classmethod
    def parse(cls, instance_id: str) -> EntityId:
        """The entity whose instance id is ``@name@key``; ``ValueError`` for any other id."""
        if not is_entity_id(instance_id):
            raise ValueError(f"{instance_id!r} is not an entity id (@name@key)")
        name, key = instance_id[1:].split(ENTITY_ID_PREFIX, 1)
        return cls(name, key)

    def __str__(self) -> str:
        return self.instance_id


def is_entity_id(instance_id: str) -> bool:
    """Whether ``instance_id`` names an entity (``@name@key``) rather than an orchestration."""
    return (
        instance_id.startswith(ENTITY_ID_PREFIX)
        and ENTITY_ID_PREFIX in instance_id[1:]
        and not instance_id[1:].startswith(ENTITY_ID_PREFIX)
    )
