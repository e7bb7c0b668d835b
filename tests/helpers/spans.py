"""Reading the spans that services wrote with the ``file`` exporter (``DF_TRACES_FILE``): one
JSON object per line, as ``ReadableSpan.to_json`` writes it, in one file per process."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class SpanRecord:
    """One exported span, with what the tests look at."""

    name: str
    trace_id: str
    span_id: str
    parent_id: str | None
    service: str
    pid: int
    kind: str
    status: str
    attributes: dict[str, Any]
    events: list[str]

    @classmethod
    def of(cls, document: dict[str, Any]) -> SpanRecord:
        resource = document["resource"]["attributes"]
        return cls(
            name=document["name"],
            trace_id=document["context"]["trace_id"],
            span_id=document["context"]["span_id"],
            parent_id=document.get("parent_id"),
            service=resource["service.name"],
            pid=int(resource["process.pid"]),
            kind=document["kind"],
            status=document["status"]["status_code"],
            attributes=document.get("attributes") or {},
            events=[event["name"] for event in document.get("events") or []],
        )


def read_spans(directory: Path) -> list[SpanRecord]:
    """Every span the processes have exported so far into ``directory``'s ``*.jsonl`` files
    (a line still being written is skipped)."""
    spans: list[SpanRecord] = []
    for path in sorted(directory.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                spans.append(SpanRecord.of(json.loads(line)))
            except ValueError:
                continue
    return spans


@dataclass(frozen=True)
class Trace:
    """The spans of one trace."""

    spans: list[SpanRecord]

    @classmethod
    def of_instance(cls, spans: list[SpanRecord], instance_id: str) -> Trace:
        """The trace the HTTP start of ``instance_id`` is the root of."""
        roots = [
            s
            for s in spans
            if s.attributes.get("durable.instance.id") == instance_id
            and s.service.endswith("client")
        ]
        assert len(roots) == 1, f"{len(roots)} start spans for {instance_id}"
        return cls([s for s in spans if s.trace_id == roots[0].trace_id])

    @property
    def root(self) -> SpanRecord:
        roots = [s for s in self.spans if s.parent_id is None]
        assert len(roots) == 1, f"roots: {[r.name for r in roots]}"
        return roots[0]

    def named(self, prefix: str, **attributes: Any) -> list[SpanRecord]:
        return [
            s
            for s in self.spans
            if s.name.startswith(prefix)
            and all(s.attributes.get(k) == v for k, v in attributes.items())
        ]

    def parent(self, span: SpanRecord) -> SpanRecord:
        [parent] = [s for s in self.spans if s.span_id == span.parent_id]
        return parent

    def assert_connected(self) -> None:
        """One root; every other span's parent is in the trace; no span twice."""
        ids = Counter(s.span_id for s in self.spans)
        assert max(ids.values()) == 1, "a span was exported twice"
        assert self.root
        orphans = [s.name for s in self.spans if s.parent_id and s.parent_id not in ids]
        assert not orphans, f"spans whose parent is not in the trace: {orphans}"
