"""benchmarks/likeness.py voice calibration: thresholds hold per *query*, not per window row.

A query of several 3 s windows is one trial per talent (its best row against the talent's best row,
as the detector's search reports it). Calibrating on rows let noisy multi-window queries through more
often than the target (per-query FAR ~3.6 % at the old 1 %-per-row review level); these tests pin
the per-query rule on synthetic scores (no model, no data).
"""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.likeness import query_impostors, query_scores, rate, stricter_threshold


def _queries(rng: np.random.Generator, n_queries: int, rows: int, speakers: int, noise: float):
    """Unit query rows around their speaker's direction, and one unit talent row per speaker."""
    dim = 32
    talents = np.linalg.qr(rng.standard_normal((dim, speakers)))[0].T  # orthonormal voices
    owners = rng.integers(0, speakers, n_queries)
    out = []
    for o in owners:
        q = talents[o] + noise * rng.standard_normal((rows, dim))
        out.append(q / np.linalg.norm(q, axis=1, keepdims=True))
    return out, [t[None] for t in talents], owners


def test_query_scores_are_best_row_against_best_talent_row():
    q = [np.array([[1.0, 0.0], [0.6, 0.8]]), np.zeros((0, 2))]
    talents = [np.array([[0.0, 1.0], [1.0, 0.0]]), np.array([[-1.0, 0.0]])]
    s = query_scores(q, talents)
    assert s.shape == (2, 2)
    assert s[0, 0] == pytest.approx(1.0) and s[0, 1] == pytest.approx(-0.6)
    assert np.all(np.isneginf(s[1]))  # a query without rows never matches


def test_query_impostors_drop_the_own_speaker_per_condition():
    s = np.array([[0.9, 0.1, 0.2], [0.3, 0.8, 0.4], [0.5, 0.6, 0.7]])
    imp = query_impostors(s, np.array([0, 1, 2]), ["clean", "noise", "clean"])
    assert list(imp) == ["clean", "noise"]
    assert sorted(imp["clean"].tolist()) == [0.1, 0.2, 0.5, 0.6]
    assert sorted(imp["noise"].tolist()) == [0.3, 0.4]


def test_stricter_threshold_takes_the_higher_of_clean_and_pooled():
    rng = np.random.default_rng(0)
    clean, noisy = rng.normal(0.5, 0.05, 2000), rng.normal(0.4, 0.05, 2000)
    t = stricter_threshold({"clean": clean, "noisy": noisy}, 0.01)
    assert t == stricter_threshold({"clean": clean}, 0.01)  # clean impostors score higher here: they decide
    assert rate(clean, t) <= 0.01 and rate(np.concatenate([clean, noisy]), t) <= 0.01
    t2 = stricter_threshold({"clean": noisy, "noisy": clean + 0.1}, 0.01)
    assert rate(np.concatenate([noisy, clean + 0.1]), t2) <= 0.01 and t2 > stricter_threshold({"clean": noisy}, 0.01)


def test_per_query_threshold_holds_the_per_query_far_that_the_per_row_one_exceeds():
    rng = np.random.default_rng(3)
    Q, talents, owners = _queries(rng, 1500, rows=8, speakers=6, noise=0.35)
    conditions = ["clean"] * len(Q)
    # per-row impostors (every row's best score against another speaker) -- the rule before
    row_imp = np.concatenate([(q @ np.vstack([t for k, t in enumerate(talents) if k != o]).T).ravel()
                              for q, o in zip(Q, owners)])
    q_imp = query_impostors(query_scores(Q, talents), owners, conditions)
    per_row, per_query = stricter_threshold({"clean": row_imp}, 0.01), stricter_threshold(q_imp, 0.01)
    assert rate(q_imp["clean"], per_row) > 0.02  # 8 rows per query: the per-row level lets ~5x through
    assert rate(q_imp["clean"], per_query) <= 0.01 and per_query > per_row
    blk = stricter_threshold(q_imp, 0.001)
    assert rate(q_imp["clean"], blk) <= 0.001 and blk >= per_query
