"""Counts per verdict and the exit code a pipeline gates on."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from enum import Enum
from typing import Iterable, Mapping

from scanner.types import AssetResult, Verdict


class FailOn(str, Enum):
    """Which verdicts make the run exit 1. Assets that could not be checked always exit 2."""

    REVIEW = "review"  # block or review
    BLOCK = "block"  # block only
    NEVER = "never"


@dataclass(frozen=True)
class Summary:
    counts: Mapping[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def __getitem__(self, verdict: str) -> int:
        return self.counts.get(verdict, 0)


def summarize(results: Iterable[AssetResult | Mapping]) -> Summary:
    """Count verdicts over result objects or JSONL records."""
    c: Counter[str] = Counter()
    for r in results:
        verdict = r.verdict.value if isinstance(r, AssetResult) else str(r["verdict"])
        c[verdict] += 1
    return Summary({v.value: c.get(v.value, 0) for v in Verdict})


def exit_code(summary: Summary, fail_on: FailOn = FailOn.REVIEW) -> int:
    """2 if any asset could not be checked, 1 if a verdict hits ``fail_on``, else 0."""
    if summary["error"]:
        return 2
    if fail_on is FailOn.REVIEW and (summary["block"] or summary["review"]):
        return 1
    if fail_on is FailOn.BLOCK and summary["block"]:
        return 1
    return 0
