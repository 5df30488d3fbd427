"""Resume: reuse results whose asset bytes and scan configuration are unchanged, and whose
signature verifies (an edited ``results.jsonl`` is checked again, never trusted)."""

from __future__ import annotations

from pathlib import Path

from scanner.jobs.integrity import RecordSigner
from scanner.reports.jsonl import read_results


class Previous(dict):
    """Reusable earlier records keyed by asset path; ``rejected`` lists ``(path, why)`` for records
    that did not verify and will be checked again."""

    rejected: list[tuple[str, str]]

    def __init__(self) -> None:
        super().__init__()
        self.rejected = []


def previous_results(path: Path, config: str, signer: RecordSigner) -> Previous:
    """Records in an earlier ``results.jsonl`` that a re-run may reuse, keyed by asset path.

    Only checked results (not ``error``) made under the same configuration fingerprint and
    signed with this catalog's key count; anything that failed, is missing, does not verify or
    was made with other models/indexes/policy is redone.
    """
    out = Previous()
    if not Path(path).is_file():
        return out
    for rec in read_results(path):
        if not isinstance(rec, dict) or not isinstance(rec.get("path"), str):
            continue
        problem = signer.problem(rec)
        if problem is not None:
            out.rejected.append((rec["path"], problem))
            out.pop(rec["path"], None)
        elif rec.get("verdict") != "error" and rec.get("config") == config and rec.get("sha256"):
            out[rec["path"]] = rec
        else:
            out.pop(rec["path"], None)
    return out
