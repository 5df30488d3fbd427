"""Is a likeness use covered by documented consent? Pure function of the consent history."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Sequence

from scanner.types import ConsentAction, ConsentRecord

@dataclass(frozen=True)
class ConsentStatus:
    """Outcome of the consent check; ``record`` is the grant it rests on (valid or not)."""

    valid: bool
    reason: str
    record: ConsentRecord | None = None


def consent_status(records: Sequence[ConsentRecord], scopes: Sequence[str], project: str,
                   today: date) -> ConsentStatus:
    """Consent for one talent's likeness in ``project`` on ``today``, covered by any of ``scopes``
    (a likeness detector's ``consent_scopes``, the first naming the likeness: "face", "voice")."""
    kind = scopes[0] if scopes else "this"
    revoked = {r.revokes: r for r in records if r.action == ConsentAction.REVOKE and r.revokes is not None}
    grants = [r for r in records if r.action == ConsentAction.GRANT and r.scope in scopes and r.project in (project, "*")]
    if not grants:
        where = f"project {project!r}" if project else "this scan (no --project given; only '*' grants apply)"
        return ConsentStatus(False, f"no consent on record for {kind} likeness in {where}")
    day = today.isoformat()
    problems: list[ConsentStatus] = []
    for g in sorted(grants, key=lambda r: (r.valid_until or "9999-12-31", r.id), reverse=True):
        label = f"consent #{g.id} ({g.scope}, project {g.project}, document {g.document})"
        rev = revoked.get(g.id)
        if rev is not None and rev.valid_from <= day:
            problems.append(ConsentStatus(False, f"{label} was revoked on {rev.valid_from} (record #{rev.id})", g))
        elif g.valid_from and day < g.valid_from:
            problems.append(ConsentStatus(False, f"{label} only starts on {g.valid_from}", g))
        elif g.valid_until and day > g.valid_until:
            problems.append(ConsentStatus(False, f"{label} expired on {g.valid_until}", g))
        else:
            until = f"until {g.valid_until}" if g.valid_until else "open-ended"
            return ConsentStatus(True, f"covered by {label}, valid {until}", g)
    return problems[0]
