"""Routes matched case-insensitively, as the Functions host matches them, without touching ids.

The Functions host routes with ASP.NET Core, whose literal segments match in any letter case
(``/Instances/{instanceId}/Terminate`` is ``/instances/{instanceId}/terminate``) while route
parameters keep the case they were sent in. Starlette matches exactly. Lowercasing the whole
path would change instance ids, event names and function names, which are case-sensitive, so
this middleware compares a request's path with the API's route templates segment by segment
and, when one matches but for the case of its literal segments, rewrites only those segments
to the template's spelling before the router sees the path. Every later step (routing, the
405's ``Allow``, telling the ``/durabletask/`` routes apart) then sees one spelling.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

_PARAMETER = re.compile(r"^\{(\w+)(?::str)?\}$")
"""A route parameter that matches one whole, non-empty segment (Starlette's default)."""


@dataclass(frozen=True)
class RouteTemplate:
    """A route's path as segments: a literal spelling, or ``None`` where a parameter stands."""

    segments: tuple[str | None, ...]

    @classmethod
    def parse(cls, path: str) -> RouteTemplate:
        """Raises ``ValueError`` for a parameter that may span segments (``{p:path}``) or only
        part of one: such a route cannot be compared segment by segment."""
        segments: list[str | None] = []
        for segment in path.split("/"):
            if "{" in segment:
                if not _PARAMETER.match(segment):
                    raise ValueError(
                        f"route {path!r}: {segment!r} is not a whole-segment parameter"
                    )
                segments.append(None)
            else:
                segments.append(segment)
        return cls(tuple(segments))

    @property
    def literal_count(self) -> int:
        return sum(segment is not None for segment in self.segments)

    def spelling_of(self, path_segments: list[str]) -> list[str] | None:
        """The path with its literal segments spelt as here, or ``None`` if it does not match
        but for letter case. Only ASCII letters fold: no id is matched through a character
        that merely lowercases to a literal's (the Kelvin sign to ``k``)."""
        if len(path_segments) != len(self.segments):
            return None
        spelt = []
        for sent, literal in zip(path_segments, self.segments, strict=True):
            if literal is None:
                if not sent:
                    return None
                spelt.append(sent)
            elif sent == literal or (sent.isascii() and sent.lower() == literal.lower()):
                spelt.append(literal)
            else:
                return None
        return spelt


class RouteSpellings:
    """The API's route templates, and the spelling they give a path sent in any case."""

    def __init__(self, paths: Iterable[str]) -> None:
        # As ASP.NET Core does, a template with more literal segments is preferred over one
        # with parameters where both would match (none of the API's templates overlap today);
        # between equals, the first given wins, as in the router.
        templates = dict.fromkeys(RouteTemplate.parse(path) for path in paths)
        self._templates = sorted(templates, key=lambda t: -t.literal_count)

    def canonical(self, path: str) -> str:
        """``path`` with its literal segments spelt as the first template it matches spells
        them; ``path`` itself when no template matches (the router then answers 404)."""
        segments = path.split("/")
        for template in self._templates:
            spelt = template.spelling_of(segments)
            if spelt is not None:
                return "/".join(spelt)
        return path


class CaseInsensitiveRoutes:
    """ASGI middleware: rewrites a request's path (and ``raw_path``) to the spelling of the
    route it matches in any letter case, leaving every parameter segment as sent."""

    def __init__(self, app: ASGIApp, spellings: RouteSpellings) -> None:
        self.app = app
        self.spellings = spellings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope = self._respelt(scope)
        await self.app(scope, receive, send)

    def _respelt(self, scope: Scope) -> Scope:
        path: str = scope["path"]
        root_path: str = scope.get("root_path", "")
        mounted = root_path if root_path and path.startswith(root_path) else ""
        route_path = path[len(mounted) :]
        canonical = self.spellings.canonical(route_path)
        if canonical == route_path:
            return scope
        respelt = {**scope, "path": mounted + canonical}
        raw_path = scope.get("raw_path")
        if raw_path is not None:
            respelt["raw_path"] = _respelt_raw(raw_path, path, mounted + canonical)
        return respelt


def _respelt_raw(raw_path: bytes, path: str, canonical: str) -> bytes:
    """``raw_path`` with the segments the rewrite changed replaced by their new spelling.

    Segments correspond one to one (an escaped ``/`` is refused before routing, by
    ``RequestGuards``); where they do not, the raw path is left as it was.
    """
    raw_segments = raw_path.split(b"/")
    sent = path.split("/")
    spelt = canonical.split("/")
    if not len(raw_segments) == len(sent) == len(spelt):
        return raw_path
    return b"/".join(
        raw if before == after else after.encode("ascii")
        for raw, before, after in zip(raw_segments, sent, spelt, strict=True)
    )
