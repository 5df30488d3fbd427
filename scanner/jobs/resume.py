"""Resume: reuse results whose asset bytes and scan configuration are unchanged."""

from __future__ import annotations

from pathlib import Path

from scanner.reports.jsonl import read_results


def previous_results(path: Path, config: str) -> dict[str, dict]:
    """Records in an earlier ``results.jsonl`` that a re-run may reuse, keyed by asset path.

    Only checked results (not ``error``) made under the same configuration fingerprint count;
    anything that failed, is missing or was made with other models/indexes/policy is redone.
    """
    if not Path(path).is_file():
        return {}
    out: dict[str, dict] = {}
    for rec in read_results(path):
        if rec.get("verdict") != "error" and rec.get("config") == config and rec.get("sha256"):
            out[rec["path"]] = rec
        else:
            out.pop(rec.get("path", ""), None)
    return out
