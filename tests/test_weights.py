"""Model registry (models/*.json), weights import with sha256 checks, require_weights."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from scanner.config import REPO_ROOT, Settings
from scanner.detectors.base import options_for
from scanner.models.weights import (
    RECEIPT, ModelSpec, find_weights, get_spec, import_weights, registry, require_weights,
)
from scanner.errors import ConfigError, ModelMissingError, ScannerError

WEIGHTS = b"pretend these are model weights\x00\x01\x02" * 100
WEIGHTS_SHA = hashlib.sha256(WEIGHTS).hexdigest()


def _entry(name: str, **kw) -> dict:
    d = {
        "name": name, "detector": "image.clip", "framework": "open_clip", "dim": 512,
        "architecture": "ViT-B-32", "pretrained": "laion-test", "weights_file": "model.bin",
        "sha256": WEIGHTS_SHA, "sources": ["somewhere"], "licence": "MIT",
    }
    d.update(kw)
    return d


@pytest.fixture
def env(tmp_path):
    reg = tmp_path / "registry"
    reg.mkdir()
    settings = Settings(model_registry=reg, model_cache=tmp_path / "cache")
    return settings, reg, tmp_path


def _register(reg: Path, filename: str, entry: dict | str) -> None:
    (reg / filename).write_text(entry if isinstance(entry, str) else json.dumps(entry))


def _source(tmp_path: Path, data: bytes = WEIGHTS, name: str = "download.bin") -> Path:
    p = tmp_path / "downloads" / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return p


# --------------------------------------------------------------------------- registry


def test_registry_loads_entries(env):
    settings, reg, _ = env
    _register(reg, "a.json", _entry("model-a"))
    _register(reg, "b.json", _entry("model-b", dim=64, test_only=True, sha256=None, config={"embed_dim": 64}))
    _register(reg, "README.md", "not json, not read")
    specs = registry(settings)
    assert sorted(specs) == ["model-a", "model-b"]
    a = specs["model-a"]
    assert isinstance(a, ModelSpec)
    assert a.dim == 512 and a.sha256 == WEIGHTS_SHA and a.sources == ("somewhere",)
    assert specs["model-b"].test_only is True and specs["model-b"].config == {"embed_dim": 64}
    assert get_spec(settings, "model-b").dim == 64


def test_empty_registry(env):
    settings, _, _ = env
    assert registry(settings) == {}
    with pytest.raises(ConfigError, match="none"):
        get_spec(settings, "anything")


def test_unknown_model_lists_registered(env):
    settings, reg, _ = env
    _register(reg, "a.json", _entry("model-a"))
    with pytest.raises(ConfigError) as err:
        get_spec(settings, "model-z")
    assert "model-z" in str(err.value) and "model-a" in str(err.value)


def test_duplicate_name_rejected(env):
    settings, reg, _ = env
    _register(reg, "a.json", _entry("same"))
    _register(reg, "b.json", _entry("same", dim=64))
    with pytest.raises(ConfigError, match="registered twice"):
        registry(settings)


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        json.dumps(_entry("x", colour="blue")),  # unknown field
        json.dumps({"name": "x", "detector": "image.clip"}),  # required fields missing
        "[]",
    ],
)
def test_bad_registry_file(env, content):
    settings, reg, _ = env
    _register(reg, "bad.json", content)
    with pytest.raises(ConfigError, match="bad.json"):
        registry(settings)


def test_repository_registry_is_valid():
    specs = registry(Settings(model_registry=REPO_ROOT / "models"))
    assert "clip-test-tiny" in specs and specs["clip-test-tiny"].test_only
    default = specs[options_for("image.clip", Settings()).model]
    assert not default.test_only and default.weights_file and default.dim > 0


# --------------------------------------------------------------------------- import


def test_import_with_matching_sha_installs_with_receipt(env):
    settings, reg, tmp = env
    _register(reg, "a.json", _entry("model-a"))
    spec = get_spec(settings, "model-a")
    dest = import_weights(spec, settings, _source(tmp))
    assert dest == settings.model_cache / "model-a" / "model.bin"
    assert dest.read_bytes() == WEIGHTS
    receipt = json.loads((dest.parent / RECEIPT).read_text())
    assert receipt["file"] == "model.bin"
    assert receipt["sha256"] == WEIGHTS_SHA
    assert receipt["size"] == len(WEIGHTS)
    assert "download.bin" in receipt["source"]
    assert receipt["installed"]
    # nothing but the weights and the receipt is left in the cache folder
    assert sorted(p.name for p in dest.parent.iterdir()) == sorted(["model.bin", RECEIPT])
    assert require_weights(spec, settings) == (dest, WEIGHTS_SHA)


def test_import_with_wrong_sha_refused(env):
    settings, reg, tmp = env
    _register(reg, "a.json", _entry("model-a"))
    spec = get_spec(settings, "model-a")
    bad = _source(tmp, WEIGHTS + b"tampered")
    with pytest.raises(ConfigError) as err:
        import_weights(spec, settings, bad)
    msg = str(err.value)
    assert "refusing" in msg
    assert WEIGHTS_SHA in msg and hashlib.sha256(WEIGHTS + b"tampered").hexdigest() in msg
    assert find_weights(spec, settings) is None
    assert not (settings.model_cache / "model-a" / "model.bin").exists()


def test_import_wrong_sha_does_not_replace_installed_weights(env):
    settings, reg, tmp = env
    _register(reg, "a.json", _entry("model-a"))
    spec = get_spec(settings, "model-a")
    dest = import_weights(spec, settings, _source(tmp))
    with pytest.raises(ConfigError):
        import_weights(spec, settings, _source(tmp, b"evil", "evil.bin"))
    assert dest.read_bytes() == WEIGHTS
    assert require_weights(spec, settings)[1] == WEIGHTS_SHA


def test_import_without_known_sha_records_it(env):
    settings, reg, tmp = env
    _register(reg, "a.json", _entry("model-a", sha256=None))
    spec = get_spec(settings, "model-a")
    dest = import_weights(spec, settings, _source(tmp, b"whatever bytes"))
    assert json.loads((dest.parent / RECEIPT).read_text())["sha256"] == hashlib.sha256(b"whatever bytes").hexdigest()


def test_import_test_only_model_refused(env):
    settings, reg, tmp = env
    _register(reg, "t.json", _entry("tiny", test_only=True, sha256=None, weights_file=""))
    with pytest.raises(ConfigError, match="test model"):
        import_weights(get_spec(settings, "tiny"), settings, _source(tmp))
    assert not (settings.model_cache / "tiny").exists()


def test_import_missing_source(env):
    settings, reg, tmp = env
    _register(reg, "a.json", _entry("model-a"))
    with pytest.raises(ConfigError, match="not found"):
        import_weights(get_spec(settings, "model-a"), settings, tmp / "nope.bin")


# --------------------------------------------------------------------------- require / find


def test_require_weights_missing_says_how_to_install(env):
    settings, reg, _ = env
    _register(reg, "a.json", _entry("model-a"))
    spec = get_spec(settings, "model-a")
    with pytest.raises(ModelMissingError) as err:
        require_weights(spec, settings)
    msg = str(err.value)
    assert "scanner models pull model-a" in msg
    assert "scanner models import model-a" in msg
    assert "model.bin" in msg
    assert isinstance(err.value, ScannerError)


def test_weights_dropped_in_registry_folder_are_found_and_hashed(env):
    settings, reg, _ = env
    _register(reg, "a.json", _entry("model-a"))
    spec = get_spec(settings, "model-a")
    (reg / "model-a").mkdir()
    (reg / "model-a" / "model.bin").write_bytes(WEIGHTS)
    path, digest = require_weights(spec, settings)
    assert path == reg / "model-a" / "model.bin"
    assert digest == WEIGHTS_SHA
    receipt = json.loads((reg / "model-a" / RECEIPT).read_text())
    assert receipt["sha256"] == WEIGHTS_SHA and receipt["source"] == "found in place"


def test_cache_is_preferred_over_registry_folder(env):
    settings, reg, tmp = env
    _register(reg, "a.json", _entry("model-a", sha256=None))
    spec = get_spec(settings, "model-a")
    (reg / "model-a").mkdir()
    (reg / "model-a" / "model.bin").write_bytes(b"registry copy")
    cached = import_weights(spec, settings, _source(tmp, b"cache copy"))
    assert find_weights(spec, settings) == cached
    assert require_weights(spec, settings)[1] == hashlib.sha256(b"cache copy").hexdigest()


def test_changed_weights_of_other_size_are_rehashed(env):
    settings, reg, _ = env
    _register(reg, "a.json", _entry("model-a", sha256=None))
    spec = get_spec(settings, "model-a")
    folder = reg / "model-a"
    folder.mkdir()
    (folder / "model.bin").write_bytes(b"version one")
    assert require_weights(spec, settings)[1] == hashlib.sha256(b"version one").hexdigest()
    (folder / "model.bin").write_bytes(b"version two, longer")
    assert require_weights(spec, settings)[1] == hashlib.sha256(b"version two, longer").hexdigest()


def test_changed_weights_of_same_size_are_rehashed(env):
    """Two checkpoints of one architecture have the same size; the receipt must not hide a swap.

    The digest pins index manifests, so a stale one lets an index built with other weights load.
    """
    settings, reg, _ = env
    _register(reg, "a.json", _entry("model-a", sha256=None))
    spec = get_spec(settings, "model-a")
    folder = reg / "model-a"
    folder.mkdir()
    (folder / "model.bin").write_bytes(b"weights AAAA")
    first = require_weights(spec, settings)[1]
    st = os.stat(folder / "model.bin")
    (folder / "model.bin").write_bytes(b"weights BBBB")  # same size, different content
    os.utime(folder / "model.bin", ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    second = require_weights(spec, settings)[1]
    assert first == hashlib.sha256(b"weights AAAA").hexdigest()
    assert second == hashlib.sha256(b"weights BBBB").hexdigest()


def test_read_only_model_folder_still_gives_digest(env, monkeypatch):
    settings, reg, _ = env
    _register(reg, "a.json", _entry("model-a"))
    spec = get_spec(settings, "model-a")
    (reg / "model-a").mkdir()
    (reg / "model-a" / "model.bin").write_bytes(WEIGHTS)
    import scanner.models.weights as w

    def refuse(*a, **kw):
        raise PermissionError(13, "Read-only file system")

    monkeypatch.setattr(w, "atomic_write_json", refuse)
    assert require_weights(spec, settings)[1] == WEIGHTS_SHA
    assert not (reg / "model-a" / RECEIPT).exists()


def test_test_only_model_has_no_weights_to_find(env):
    settings, reg, _ = env
    _register(reg, "t.json", _entry("tiny", test_only=True, weights_file="", sha256=None))
    spec = get_spec(settings, "tiny")
    assert find_weights(spec, settings) is None


def test_a_model_card_without_a_detector_is_not_a_registry_entry(env):
    settings, reg, _ = env
    _register(reg, "head-card.json", json.dumps({"name": "some-head", "for": "a benchmark", "sha256": "0" * 64}))
    _register(reg, "ok.json", json.dumps(_entry("x")))
    assert set(registry(settings)) == {"x"}
