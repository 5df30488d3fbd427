"""The re-drawn-art head (benchmarks/common/redraw.py head_forward / load_head) and the training script's
pure filters (models/train_redraw_head.py). No model weights, no shared data."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from benchmarks.common import redraw as rd  # noqa: E402


def _params(hidden: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    if not hidden:
        return {"w1": rng.normal(size=(1280, 256)).astype(np.float32), "b1": np.zeros(256, np.float32)}
    return {"w1": rng.normal(size=(1280, hidden)).astype(np.float32), "b1": rng.normal(size=hidden).astype(np.float32),
            "w2": rng.normal(size=(hidden, 256)).astype(np.float32), "b2": np.zeros(256, np.float32)}


@pytest.mark.parametrize("hidden", [0, 64])
def test_head_forward_shape_and_unit_norm(hidden):
    x = np.random.default_rng(1).random((5, 1280)).astype(np.float32)
    z = rd.head_forward(_params(hidden), x)
    assert z.shape == (5, 256) and z.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-5)


def test_head_forward_mlp_applies_relu_between_layers():
    p = _params(8)
    x = np.random.default_rng(2).random((3, 1280)).astype(np.float32)
    h = np.maximum(x @ p["w1"] + p["b1"], 0)
    want = h @ p["w2"] + p["b2"]
    want /= np.linalg.norm(want, axis=1, keepdims=True)
    np.testing.assert_allclose(rd.head_forward(p, x), want, rtol=1e-4, atol=1e-5)


def test_head_forward_rejects_wrong_width():
    with pytest.raises(ValueError, match="1280"):
        rd.head_forward(_params(0), np.zeros((2, 512), np.float32))


def test_load_head_checks_sha256(tmp_path):
    path = tmp_path / "h.npz"
    np.savez(path, **_params(0))
    good = hashlib.sha256(path.read_bytes()).hexdigest()
    assert rd.load_head(str(path), good)["w1"].shape == (1280, 256)
    with pytest.raises(ValueError, match="sha256"):
        rd.load_head(str(path), "0" * 64)


def test_cutout_filter_keeps_shapes_and_drops_tiny_empty_and_rectangles():
    from models.train_redraw_head import is_cutout

    a = np.zeros((200, 200), np.uint8)
    cv2.circle(a, (100, 100), 60, 255, -1)
    assert is_cutout(a)
    assert not is_cutout(np.zeros((200, 200), np.uint8))  # empty
    small = np.zeros((200, 200), np.uint8)
    cv2.circle(small, (100, 100), 20, 255, -1)  # 41 px box < 64
    assert not is_cutout(small)
    rect = np.zeros((200, 200), np.uint8)
    rect[20:180, 20:180] = 255  # fully opaque box: not a shape
    assert not is_cutout(rect)
    outline = np.zeros((200, 200), np.uint8)
    cv2.circle(outline, (100, 100), 80, 255, 1)  # a thin ring: almost nothing opaque
    assert not is_cutout(outline)


def test_excluded_packages_and_families():
    from models.train_redraw_head import EXCLUDED_PACKAGES, family

    for pkg in ("wesnoth-1.16-data", "tuxpaint-stamps-animals", "desktop-base", "gnome-backgrounds"):
        assert EXCLUDED_PACKAGES.match(pkg)
    for pkg in ("openclipart-png", "hedgewars-data", "supertux-data"):
        assert not EXCLUDED_PACKAGES.match(pkg)
    assert family("/a/tux/walk-1.png") == family("/a/tux/walk-2.png") != family("/a/tux/jump-1.png")


def test_jitter_box_stays_inside_the_canvas():
    from models.train_redraw_head import jitter_box

    rng = np.random.default_rng(3)
    for _ in range(200):
        x0, y0, x1, y1 = jitter_box((400, 200, 512, 288), rng)
        assert 0 <= x0 < x1 <= rd.CANVAS[0] and 0 <= y0 < y1 <= rd.CANVAS[1]
