"""Counts per verdict, the exit code a pipeline gates on, and terminal-friendly asset names."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from enum import Enum, IntEnum
from typing import Iterable, Mapping

from scanner.types import AssetResult, Verdict


class ExitCode(IntEnum):
    """What `scanner scan`, `check` and `merge` (and every other command) exit with.

    A pipeline must tell "this delivery has a problem" (1, 2, 3) from "the scanner could
    not run" (4): the second says nothing about the delivery at all.
    """

    PASS = 0  # every asset was checked and passes
    FLAGGED = 1  # some asset is block/review (per --fail-on)
    UNCHECKED = 2  # some asset could not be checked (corrupt, unreadable, unsupported...)
    NOTHING_TO_SCAN = 3  # no media found: an empty or mistyped folder is not "all clear"
    CANNOT_RUN = 4  # usage or configuration error, missing model, bad catalog/index: nothing was judged


EXIT_CODE_MEANINGS: Mapping[int, str] = {
    ExitCode.PASS: "every asset passes",
    ExitCode.FLAGGED: "some asset is block or review (see --fail-on)",
    ExitCode.UNCHECKED: "some asset could not be checked (an error record)",
    ExitCode.NOTHING_TO_SCAN: "nothing to scan: no media files found (an empty report is written)",
    ExitCode.CANNOT_RUN: "the scanner could not run: usage or configuration error, missing model",
}


def exit_code_help() -> str:
    """The exit-code table as one help paragraph (``scanner --help`` prints it)."""
    return "Exit codes: " + "; ".join(f"{int(code)} {text}" for code, text in EXIT_CODE_MEANINGS.items()) + "."


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


def exit_code(summary: Summary, fail_on: FailOn = FailOn.REVIEW) -> ExitCode:
    """3 if there was nothing to check, 2 if any asset could not be checked, 1 if a verdict hits
    ``fail_on``, else 0 (see ``ExitCode``)."""
    if summary.total == 0:
        return ExitCode.NOTHING_TO_SCAN
    if summary["error"]:
        return ExitCode.UNCHECKED
    if fail_on is FailOn.REVIEW and (summary["block"] or summary["review"]):
        return ExitCode.FLAGGED
    if fail_on is FailOn.BLOCK and summary["block"]:
        return ExitCode.FLAGGED
    return ExitCode.PASS


def shorten_middle(text: str, width: int) -> str:
    """``text`` in at most ``width`` characters, cut in the middle so that both the start and the
    end (where render versions and frame numbers live: ``..._v003.png``) stay visible."""
    if len(text) <= width:
        return text
    if width <= 1:
        return "…"[:width]
    tail = (width - 1) // 2 + (width - 1) % 2  # the end is the part that tells versions apart
    head = width - 1 - tail
    return text[:head] + "…" + text[len(text) - tail:]
