"""The contract kits (``scanner.testing``) over every registered detector and every index kind.

A new detector or index kind is tested here without new test code: detectors come from
``detector_names()`` (with their default and test-only models), index kinds from ``index_kinds()``.
A detector whose weights or packages are not installed is skipped with the reason. The kits
themselves are tested at the bottom: a detector or index that breaks a clause must fail its check.

``KNOWN_BREACHES`` lists clauses the code on main does not meet yet (strict xfail: the test turns
red when the breach is fixed, so the entry is removed then).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from scanner.config import Settings
from scanner.detectors.base import Embedding, VectorDetector
from scanner.index.faiss_index import FloatIndex
from scanner.testing.detector_kit import DetectorKit, DetectorUnavailable, detector_cases
from scanner.testing.examples import examples
from scanner.testing.index_kit import IndexKind, IndexKit, index_kinds
from scanner.types import Metric

CASES = detector_cases()
KINDS = index_kinds()

KNOWN_BREACHES: dict[tuple[str, str], str] = {}  # none open now


def _mark_known(request, subject: str, check: str) -> None:
    reason = KNOWN_BREACHES.get((subject, check))
    if reason:
        request.applymarker(pytest.mark.xfail(reason=reason, strict=True))


# ------------------------------------------------------------------ every detector


@pytest.fixture(scope="module", params=CASES, ids=[c.id for c in CASES])
def detector_kit(request) -> DetectorKit:
    try:
        return DetectorKit.from_case(request.param)
    except DetectorUnavailable as exc:
        pytest.skip(str(exc))


def test_every_detector_has_a_case():
    from scanner.detectors.base import detector_names

    assert {c.name for c in CASES} == set(detector_names())
    assert any(c.model == "clip-test-tiny" for c in CASES)  # the test model runs where real weights are absent


@pytest.mark.parametrize("check", DetectorKit.CHECKS)
def test_detector_contract(detector_kit: DetectorKit, check: str, request):
    _mark_known(request, detector_kit.label, check)
    getattr(detector_kit, f"check_{check}")()


# ------------------------------------------------------------------ every index kind


@pytest.mark.parametrize("check", IndexKit.CHECKS)
@pytest.mark.parametrize("kind", KINDS, ids=[k.name for k in KINDS])
def test_index_contract(kind: IndexKind, check: str, request):
    _mark_known(request, kind.name, check)
    getattr(IndexKit(kind), f"check_{check}")()


def test_every_index_kind_is_covered():
    from scanner.index.faiss_index import APPROXIMATE, RETIRED

    names = {k.name for k in KINDS}
    assert {"flat-cosine", "flat-hamming", "landmark", "local-flat", "local-ivfpq"} <= names
    assert set(APPROXIMATE) <= names and "pq4-sq8" in names
    assert not names & {*RETIRED, "ivfpq-refine-sq8"}  # kinds choose_index never picked are gone


# ------------------------------------------------------------------ the kits catch breaches


class _Thumb(VectorDetector):
    """A tiny image detector for testing the kit: a centred 6x6 grey thumbnail (flat images: empty)."""

    name = "test.thumb"
    modality = "image"
    metric = Metric.COSINE

    def __init__(self):
        self.model_id, self.weights_sha256, self.dim = "thumb-v1", "none", 36
        self.floors = {"search_k": 10}  # as its calibration entry below says

    def _vector(self, img: Image.Image) -> np.ndarray:
        x = np.asarray(img.convert("L").resize((6, 6), Image.Resampling.BOX), np.float32).reshape(-1)
        return x - x.mean()

    def embed_references(self, images):
        out = []
        for img in images:
            v = self._vector(img)
            n = float(np.linalg.norm(v))
            out.append(Embedding(np.zeros((0, 36), np.float32), "flat") if n < 1.0
                       else Embedding((v / n)[None, :].astype(np.float32)))
        return out


class _Noisy(_Thumb):
    def _vector(self, img):
        return super()._vector(img) + np.random.default_rng().normal(0, 1.0, 36).astype(np.float32)


class _BatchDependent(_Thumb):
    def embed_references(self, images):
        out = super().embed_references(images)
        shift = 0.01 * len(images)  # a result that depends on the rest of the batch
        return [e if e.empty else Embedding(e.vectors + shift) for e in out]


class _TupleParams(_Thumb):
    @property
    def params(self):
        return {"size": (6, 6)}


@pytest.fixture
def thumb_settings(tmp_path) -> Settings:
    levels = {"block": 0.97, "review": 0.95}
    entry = {"metric": "cosine", "final": levels, "ideation": levels, "floors": {"search_k": 10}}
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps({"version": "test", "detectors": {"test.thumb": {"thumb-v1": entry}}}))
    return Settings(calibration=path)


def _kit(cls, settings: Settings) -> DetectorKit:
    return DetectorKit(cls(), examples("test.thumb", "image"), settings)


def test_a_sound_detector_passes_every_check(thumb_settings):
    _kit(_Thumb, thumb_settings).run_all()


@pytest.mark.parametrize("cls, check, message", [
    (_Noisy, "deterministic", "not deterministic"),
    (_BatchDependent, "batch_equals_single", "differs from embedding it alone"),
    (_TupleParams, "params_json", "params change in a JSON round trip"),
])
def test_a_broken_detector_fails_its_check(thumb_settings, cls, check, message):
    with pytest.raises(AssertionError, match=message):
        getattr(_kit(cls, thumb_settings), f"check_{check}")()


def test_copy_and_calibration_checks_fail_without_calibration(tmp_path):
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps({"version": "test", "detectors": {}}))
    kit = _kit(_Thumb, Settings(calibration=path))
    for check in (kit.check_copy_matches, kit.check_calibration_entry):
        with pytest.raises(AssertionError, match="no calibrated thresholds for test.thumb"):
            check()


def test_a_copy_short_of_the_review_level_fails(tmp_path):
    levels = {"block": 0.99999, "review": 0.99999}
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps({"version": "t", "detectors": {"test.thumb": {"thumb-v1": {
        "metric": "cosine", "final": levels, "ideation": levels, "floors": {"search_k": 10}}}}}))
    with pytest.raises(AssertionError, match="short of the review level"):
        _kit(_Thumb, Settings(calibration=path)).check_copy_matches()


class _ForgetfulIndex(FloatIndex):
    """Drops the other shard on merge and keeps removed rows: both contract breaches."""

    def merge(self, other):
        pass

    def remove(self, ids):
        return 0


def test_a_broken_index_fails_its_checks():
    base = next(k for k in KINDS if k.name == "flat-cosine")
    broken = IndexKind("forgetful", lambda: _ForgetfulIndex(32), base.load, base.rows, base.queries,
                       base.search, base.found)
    kit = IndexKit(broken)
    with pytest.raises(AssertionError, match="merged"):
        kit.check_shard_merge()
    with pytest.raises(AssertionError, match="remove"):
        kit.check_add_remove_ids()


class _LooseRange(FloatIndex):
    """Range search that ignores the radius (returns every row): a contract breach."""

    def range_search(self, vectors, radius):
        return super().range_search(vectors, -1.0)


def test_a_range_search_that_ignores_its_radius_fails_the_check():
    base = next(k for k in KINDS if k.name == "flat-cosine")
    loose = IndexKind("loose", lambda: _LooseRange(32), base.load, base.rows, base.queries, base.search, base.found)
    with pytest.raises(AssertionError, match="range_search row"):
        IndexKit(loose).check_range_search()
