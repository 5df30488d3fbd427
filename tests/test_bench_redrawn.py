"""benchmarks/redrawn.py building blocks: window GeM from an integral image, the coarse template score,
and the re-draw transforms (no shared data, no model weights)."""

from __future__ import annotations

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from benchmarks import redrawn as B  # noqa: E402
from benchmarks.common import redraw as rd  # noqa: E402


def test_window_descriptors_equal_direct_gem_and_are_finite():
    rng = np.random.default_rng(0)
    # sparse, mostly-zero activations (as after a ReLU-like stage) make float cancellation likely
    fmap = (rng.random((64, 9, 16)) * (rng.random((64, 9, 16)) > 0.7)).astype(np.float32)
    rows = B.window_descriptors(fmap)
    assert np.isfinite(rows).all()
    # the first window is the smallest height, first aspect, top-left cell
    h = sorted({max(1, round(f * 9)) for f in np.linspace(*B.WINDOW_HEIGHTS, 6)})[0]
    w = min(16, max(1, round(h * B.WINDOW_ASPECTS[0])))
    direct = B.gem(fmap[None, :, :h, :w])[0]
    np.testing.assert_allclose(rows[0], direct, atol=1e-4)


def test_template_score_finds_the_pasted_character_and_stays_bounded():
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (60, 40, 3), dtype=np.uint8)
    rgb = cv2.GaussianBlur(rgb, (0, 0), 2)
    alpha = np.zeros((60, 40), np.float32)
    cv2.ellipse(alpha, (20, 30), (18, 28), 0, 0, 360, 1.0, -1)
    cut = rd.Cutout("blob", rgb, alpha)
    other = rd.Cutout("other", cv2.GaussianBlur(rng.integers(0, 256, (60, 40, 3), dtype=np.uint8), (0, 0), 2), alpha)
    scene = cv2.GaussianBlur(rng.integers(0, 256, (rd.CANVAS[1], rd.CANVAS[0], 3), dtype=np.uint8), (0, 0), 6)
    img, box = rd.composite(cut, scene, np.random.default_rng(2), mirror=False)
    queries = [B.Query(img, box, "paste", 0)]
    res = B.run_templates([cut, other], queries)
    for r in res:
        assert (r.scores <= 1.0 + 1e-4).all() and (r.scores >= -1.0 - 1e-4).all()
    both = next(r for r in res if r.name.endswith("colour+gradient"))
    assert both.scores[0, 0] > both.scores[0, 1]
    assert both.scores[0, 0] > 0.8


@pytest.mark.parametrize("kind", list(rd.KINDS))
def test_every_redraw_kind_keeps_size_and_box(kind):
    rng = np.random.default_rng(3)
    cut = rd.Cutout("c", rng.integers(0, 256, (80, 50, 3), dtype=np.uint8), np.ones((80, 50), np.float32))
    scene = rng.integers(0, 256, (rd.CANVAS[1], rd.CANVAS[0], 3), dtype=np.uint8)
    img, (x0, y0, x1, y1) = rd.make_query(cut, scene, kind, rng)
    assert img.shape == (rd.CANVAS[1], rd.CANVAS[0], 3) and img.dtype == np.uint8
    assert 0 <= x0 < x1 <= rd.CANVAS[0] and 0 <= y0 < y1 <= rd.CANVAS[1]
    assert 0.25 * rd.CANVAS[1] - 1 <= y1 - y0 <= 0.6 * rd.CANVAS[1] + 1


def test_template_score_is_bounded_on_flat_regions():
    """A flat (posterised, sky) query area once gave colour scores in the tens: round-off over a zero
    window energy."""
    rng = np.random.default_rng(4)
    rgb = cv2.GaussianBlur(rng.integers(0, 256, (60, 40, 3), dtype=np.uint8), (0, 0), 2)
    cut = rd.Cutout("c", rgb, np.ones((60, 40), np.float32))
    flat = np.full((rd.CANVAS[1], rd.CANVAS[0], 3), 200, np.uint8)
    flat[:, : rd.CANVAS[0] // 2] = 40
    res = B.run_templates([cut], [B.Query(flat, None, "scene", -1)])
    for r in res:
        assert np.abs(r.scores).max() <= 1.0 + 1e-6
