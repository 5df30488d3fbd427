"""One JSON object per asset, flushed as soon as it is known (a killed scan keeps its lines)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator

from scanner.fsutil import atomic_write_bytes
from scanner.types import AssetResult


class JsonlWriter:
    """Append-only JSONL file; each line is written and flushed whole."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a", encoding="utf-8")

    def write(self, result: AssetResult | dict[str, Any]) -> None:
        record = result.to_dict() if isinstance(result, AssetResult) else result
        self._fh.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()

    def __enter__(self) -> "JsonlWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_results(path: Path) -> Iterator[dict[str, Any]]:
    """Records of a JSONL report; a torn last line (killed writer) is ignored."""
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                yield json.loads(line)
            except ValueError:
                continue


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    """Replace ``path`` atomically with exactly ``records`` (readable as the umask allows: a report
    is for every reviewer on the share, unlike the catalog's secrets)."""
    text = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in records)
    atomic_write_bytes(Path(path), text.encode("utf-8"), shared=True)


def write_scan_summary(path: Path, records: list[dict[str, Any]], *, exit_code: int, generated: str, stage: str,
                       project: str, calibration: str, audit_head: Any = None) -> None:
    """``scan.json`` beside ``results.jsonl``: counts, exit code and the catalog's audit head when the
    report was written (``audit_head`` is a ``catalog.audit.Anchor`` or None). The head is a copy of the
    chain's end kept outside the catalog: ``scanner audit verify --expect-head ID:HASH`` later shows a
    trail cut short or rewritten since."""
    counts: dict[str, int] = {}
    matches: dict[str, int] = {}
    for r in records:
        counts[str(r.get("verdict"))] = counts.get(str(r.get("verdict")), 0) + 1
        for f in r.get("findings") or []:
            if isinstance(f, dict):
                matches[str(f.get("level"))] = matches.get(str(f.get("level")), 0) + 1
    summary = {
        "generated": generated, "stage": stage, "project": project, "calibration": calibration,
        "assets": len(records), "verdicts": counts, "matches": matches, "exit_code": exit_code,
        "audit_head": ({"id": audit_head.id, "hash": audit_head.hash, "expect_head": str(audit_head)}
                       if audit_head is not None else None),
    }
    atomic_write_bytes(Path(path), (json.dumps(summary, indent=2, sort_keys=True) + "\n").encode("utf-8"), shared=True)
