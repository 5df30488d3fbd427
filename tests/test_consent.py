"""Talent/consent catalog (append-only) and the consent policy, without any model."""

from __future__ import annotations

import sqlite3
from datetime import date

import pytest

from scanner.catalog import Catalog, NewSample
from scanner.errors import CatalogError
from scanner.detectors.base import detector_class
from scanner.policy import ConsentStatus, Match, Thresholds, consent_status, decide
from scanner.types import Metric, Talent, Verdict

TODAY = date(2026, 6, 15)
FACE_T = Thresholds(Metric.COSINE, block=0.9, review=0.8)


@pytest.fixture
def cat() -> Catalog:
    c = Catalog(":memory:")
    return c


def _talent(cat: Catalog, name="Ann Actor", union=False) -> Talent:
    return cat.add_talent(name, union, samples=[NewSample("face", "ab" * 32, "/refs/ann.jpg")])


def test_consent_history_is_append_only(cat):
    t = _talent(cat)
    g = cat.grant_consent(t.id, "face", "P1", "2026-01-01", "2026-12-31", "CONTRACT-7")
    r = cat.revoke_consent(g.id, recorded_by="legal", document="NOTICE-2")
    assert [c.action for c in cat.consents(t.id)] == ["grant", "revoke"]
    assert r.revokes == g.id and r.recorded_by == "legal"
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        cat._db.execute("UPDATE consent SET valid_until='2099-01-01'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        cat._db.execute("DELETE FROM consent")
    with pytest.raises(CatalogError, match="already revoked"):
        cat.revoke_consent(g.id)


def test_grant_validation(cat):
    t = _talent(cat)
    with pytest.raises(CatalogError, match="--document"):
        cat.grant_consent(t.id, "face", "P1", None, None, "  ")
    with pytest.raises(CatalogError, match="before it starts"):
        cat.grant_consent(t.id, "face", "P1", "2026-05-01", "2026-01-01", "DOC")
    with pytest.raises(CatalogError, match="date like"):
        cat.grant_consent(t.id, "face", "P1", "next tuesday", None, "DOC")
    with pytest.raises(ValueError):
        cat.grant_consent(t.id, "hair", "P1", None, None, "DOC")


def test_talent_names_unique_and_removal_keeps_history(cat):
    t = _talent(cat)
    with pytest.raises(CatalogError, match="already exists"):
        _talent(cat)
    cat.grant_consent(t.id, "face", "P1", None, None, "DOC")
    cat.remove_talent(t.id)
    assert cat.talents() == [] and cat.samples() == []
    assert len(cat.consents(t.id)) == 1  # history stays
    again = _talent(cat)  # the name can be registered anew
    assert again.id != t.id


def _status(cat, t, det="image.face", project="P1", today=TODAY) -> ConsentStatus:
    return consent_status(cat.consents(t.id), detector_class(det).consent_scopes, project, today)


def test_consent_status_cases(cat):
    t = _talent(cat)
    assert not _status(cat, t).valid and "no consent on record for face" in _status(cat, t).reason
    expired = cat.grant_consent(t.id, "face", "P1", "2025-01-01", "2025-12-31", "OLD")
    st = _status(cat, t)
    assert not st.valid and "expired on 2025-12-31" in st.reason and st.record.id == expired.id
    future = cat.grant_consent(t.id, "face", "P1", "2027-01-01", None, "LATER")
    assert "only starts on 2027-01-01" in _status(cat, t).reason
    ok = cat.grant_consent(t.id, "face", "P1", "2026-01-01", "2026-12-31", "CONTRACT-7")
    st = _status(cat, t)
    assert st.valid and st.record.id == ok.id and "CONTRACT-7" in st.reason
    assert not _status(cat, t, project="P2").valid  # other project
    assert not _status(cat, t, det="audio.voice").valid  # face consent does not cover voice
    cat.revoke_consent(ok.id)
    st = _status(cat, t, today=date.today())
    assert not st.valid
    assert future.id and expired.id


def test_revocation_and_replica_scope(cat):
    t = _talent(cat)
    g = cat.grant_consent(t.id, "digital-replica", "*", None, None, "REPLICA-1")
    assert _status(cat, t, det="audio.voice", project="anything").valid
    assert _status(cat, t, det="image.face").valid
    cat.revoke_consent(g.id)
    st = _status(cat, t, today=date.today())
    assert not st.valid and "revoked on" in st.reason


def _match(talent: Talent, score: float, consent: ConsentStatus) -> Match:
    return Match("image.face", "face-model", talent, score, FACE_T, {"box": [1, 2, 3, 4]}, consent)


def test_policy_blocks_unconsented_and_explains_consented(cat):
    t = _talent(cat)
    none = _status(cat, t)
    verdict, (f,) = decide([_match(t, 0.95, none)])
    assert verdict is Verdict.BLOCK and f.reference_kind == "talent" and "no consent" in f.note
    assert f.extra["box"] == [1, 2, 3, 4]
    g = cat.grant_consent(t.id, "face", "P1", None, None, "CONTRACT-9")
    verdict, (f,) = decide([_match(t, 0.95, _status(cat, t))])
    assert verdict is Verdict.PASS and f.level == "consented" and f.consent_id == g.id and "CONTRACT-9" in f.note
    verdict, (f,) = decide([_match(t, 0.85, none)])
    assert verdict is Verdict.REVIEW  # uncertain resemblance without consent
    verdict, found = decide([_match(t, 0.5, none)])
    assert verdict is Verdict.PASS and found == []


def test_union_covered_talent_needs_review_even_with_consent(cat):
    t = _talent(cat, "Uma Union", union=True)
    cat.grant_consent(t.id, "face", "P1", None, None, "CONTRACT-U")
    st = _status(cat, t)
    verdict, (f,) = decide([_match(t, 0.95, st)], union_review=True)
    assert verdict is Verdict.REVIEW and "union-covered" in f.note
    verdict, (f,) = decide([_match(t, 0.95, st)], union_review=False)
    assert verdict is Verdict.PASS and f.level == "consented"
