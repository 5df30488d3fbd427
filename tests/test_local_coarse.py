"""``image.local`` references keep coarse-scale keypoints too, so blurred or much smaller copies, which
no longer show a sharp work's fine detail, still verify."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import ImageFilter

from scanner.config import Settings, load_settings
from scanner.detectors import local
from scanner.detectors.base import options_for
from scanner.detectors.local import COARSE_KEYPOINTS, COARSE_SCALES, LocalDetector
from scanner.errors import ConfigError, IndexMismatchError
from scanner.index import IndexStore
from tests.test_local import QUAD, build, paste, work

pytestmark = pytest.mark.usefixtures("clean_env")  # fixture in conftest.py


@pytest.fixture(scope="module")
def dets() -> dict[str, LocalDetector]:
    return {"coarse": LocalDetector(Settings()), "fine": LocalDetector(Settings(), coarse_keypoints=0)}


@pytest.fixture(scope="module")
def refs():
    return {11: work(1), 12: work(2), 13: work(3)}


def test_on_by_default_and_named_in_the_params(dets):
    assert options_for("image.local", Settings()).coarse_keypoints == COARSE_KEYPOINTS > 0
    assert dets["coarse"].params["coarse"] == f"{COARSE_KEYPOINTS} at x{' x'.join(f'{c:g}' for c in COARSE_SCALES)}"
    assert dets["fine"].params["coarse"] == "none"


def test_option_from_the_environment_and_a_negative_count_refused(monkeypatch):
    monkeypatch.setenv("SCANNER_IMAGE_LOCAL_COARSE_KEYPOINTS", "64")
    assert LocalDetector(load_settings()).coarse_keypoints == 64
    with pytest.raises(ConfigError, match="coarse_keypoints"):
        LocalDetector(Settings(), coarse_keypoints=-1)


def test_reference_rows_add_coarse_keypoints_in_image_pixels(dets):
    ref = work(2)
    fine = dets["fine"].embed_references([ref])[0]
    both = dets["coarse"].embed_references([ref])[0]
    n_fine, n = len(fine.vectors), len(both.vectors)
    assert np.array_equal(both.vectors[:n_fine], fine.vectors)  # the work-size keypoints come first, unchanged
    assert n_fine < n <= n_fine + len(COARSE_SCALES) * COARSE_KEYPOINTS
    xy = both.extra["xy"][n_fine:]
    assert (xy >= 0).all() and (xy[:, 0] <= ref.width).all() and (xy[:, 1] <= ref.height).all()
    # spread over the whole work like the fine ones, not squeezed into a corner (a wrong scale would)
    assert xy[:, 0].max() > 0.8 * ref.width and xy[:, 1].max() > 0.8 * ref.height
    assert len(both.extra["text"]) == n


def test_a_blurred_copy_verifies_more_keypoints(dets, refs):
    scene = paste(refs[12], QUAD).filter(ImageFilter.GaussianBlur(2))
    scores = {}
    for name, det in dets.items():
        hits = det.search(build(det, refs), det.embed_queries([scene]))[0]
        assert hits and hits[0].ref_id == 12
        scores[name] = hits[0].score
    assert scores["coarse"] > scores["fine"]


def test_coarse_keypoints_alone_do_not_make_a_work_indexable(dets, monkeypatch):
    ref = work(5)
    n_fine = len(dets["fine"].embed_references([ref])[0].vectors)
    monkeypatch.setattr(local, "MIN_REF_KEYPOINTS", n_fine + 1)
    emb = dets["coarse"].embed_references([ref])[0]
    assert emb.empty and f"only {n_fine} keypoints" in emb.note
    # the note's hint names detectors that do run by default, and so still compare this work
    named = emb.note.rsplit("(", 1)[1].rstrip(")").split(", ")
    assert named and set(named) <= set(Settings().detectors) - {"image.local"}


def test_an_index_built_without_them_is_refused(dets, refs, tmp_path):
    store = IndexStore(tmp_path / "indexes")
    old = dets["fine"]
    store.save("image.local", build(old, refs), old.model_id, old.weights_sha256, {}, old.params)
    new = dets["coarse"]
    with pytest.raises(IndexMismatchError):
        store.load("image.local", new.model_id, new.weights_sha256, new.dim, new.metric, new.load_index, new.params)
