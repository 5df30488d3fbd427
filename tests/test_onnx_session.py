"""Every ONNX Runtime session of the project lets idle worker threads sleep (``onnx_session``), and
the text detector's replaced session gives RapidOCR's own boxes."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from scanner.config import Settings
from scanner.errors import ModelMissingError
from scanner.testing.fixtures import artwork

ort = pytest.importorskip("onnxruntime")

from scanner.detectors.onnx_session import SPINNING, cpu_cores, session_options  # noqa: E402


def _spinning(session) -> str:
    return session.get_session_options().get_session_config_entry(SPINNING)


def test_options():
    opts = session_options()
    assert opts.get_session_config_entry(SPINNING) == "0"
    assert opts.intra_op_num_threads == cpu_cores() and opts.inter_op_num_threads == 1
    assert session_options(3, spinning=True).get_session_config_entry(SPINNING) == "1"
    assert session_options(3).intra_op_num_threads == 3


@pytest.mark.parametrize("name", ["image.sscd", "audio.melody"])
def test_detector_session_does_not_spin(name):
    from scanner.detectors.base import create

    try:
        det = create(name, Settings())
    except ModelMissingError as exc:
        pytest.skip(str(exc))
    assert _spinning(det._session) == "0"


def test_text_detector_session_does_not_spin_and_finds_rapidocrs_boxes():
    from PIL import ImageDraw, ImageFont

    from scanner.detectors.ocr import TextFinder

    try:
        finder = TextFinder(Settings())
    except ModelMissingError as exc:
        pytest.skip(str(exc))
    assert _spinning(finder._det.infer.session) == "0"
    img = artwork(4, (640, 400))
    ImageDraw.Draw(img).text((40, 300), "NEON CITY", fill=(250, 250, 250), font=ImageFont.load_default(size=56))
    ours = finder.boxes(img)
    assert len(ours) >= 1
    from rapidocr_onnxruntime.utils.infer_engine import OrtInferSession

    finder._det.infer = OrtInferSession({"model_path": finder._det.infer.session._model_path})  # RapidOCR's own
    assert np.array_equal(finder.boxes(img), ours)
