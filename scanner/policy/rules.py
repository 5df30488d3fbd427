"""Verdict rules. Pure functions: no I/O, no models."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from scanner.policy.calibration import Thresholds
from scanner.types import Clearance, Finding, Reference, Verdict


@dataclass(frozen=True)
class Match:
    """A raw nearest-neighbour hit before policy."""

    detector: str
    model: str
    reference: Reference
    score: float
    thresholds: Thresholds
    extra: dict | None = None


def level_of(m: Match) -> str | None:
    """``block``/``review``/``cleared``, or None when the score is not close enough to matter."""
    t = m.thresholds
    if t.metric.closer_or_equal(m.score, t.block):
        level = "block"
    elif t.metric.closer_or_equal(m.score, t.review):
        level = "review"
    else:
        return None
    if m.reference.clearance in (Clearance.LICENSED, Clearance.OWNED):
        return "cleared"
    return level


def decide(matches: Iterable[Match]) -> tuple[Verdict, list[Finding]]:
    """Findings (closest per detector and reference, closest first) and the verdict."""
    best: dict[tuple[str, int], Match] = {}
    for m in matches:
        key = (m.detector, m.reference.id)
        cur = best.get(key)
        if cur is None or m.thresholds.metric.closer(m.score, cur.score):
            best[key] = m
    findings: list[Finding] = []
    for m in best.values():
        level = level_of(m)
        if level is None:
            continue
        note = f"reference is {m.reference.clearance.value}: cleared for use" if level == "cleared" else ""
        findings.append(Finding(
            detector=m.detector, model=m.model, reference_id=m.reference.id,
            reference_title=m.reference.title, rights_holder=m.reference.rights_holder,
            clearance=m.reference.clearance.value, score=round(float(m.score), 4),
            metric=m.thresholds.metric.value, level=level, threshold_block=m.thresholds.block,
            threshold_review=m.thresholds.review, note=note, extra=dict(m.extra or {}),
        ))
    order = {"block": 0, "review": 1, "cleared": 2}
    findings.sort(key=lambda f: (order[f.level], f.detector, -f.score if f.metric == "cosine" else f.score))
    return verdict_of(findings), findings


def verdict_of(findings: Sequence[Finding]) -> Verdict:
    levels = {f.level for f in findings}
    if "block" in levels:
        return Verdict.BLOCK
    if "review" in levels:
        return Verdict.REVIEW
    return Verdict.PASS
