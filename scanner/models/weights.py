"""Model registry: what a model is (``models/*.json``) kept apart from where its weights are (model cache,
registry folder); ``package_weights`` finds weights shipped inside a Python package."""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from scanner.config import Settings
from scanner.errors import ConfigError, ModelMissingError
from scanner.fsutil import atomic_write_json
from scanner.media.files import sha256_file

RECEIPT = "receipt.json"


@dataclass(frozen=True)
class ModelSpec:
    """One registry entry."""

    name: str
    detector: str
    framework: str
    dim: int
    description: str = ""
    architecture: str = ""
    pretrained: str = ""
    weights_file: str = ""
    sha256: str | None = None
    sources: tuple[str, ...] = ()
    licence: str = ""
    test_only: bool = False
    seed: int = 0
    config: dict[str, Any] = field(default_factory=dict)
    note: str = ""


def registry(settings: Settings) -> dict[str, ModelSpec]:
    """All models described in the registry folder, by name.

    A JSON file there without a ``detector`` key is not a registry entry (e.g. the card of a head
    the project trained for a benchmark) and is left alone; one with it must be a valid entry."""
    out: dict[str, ModelSpec] = {}
    folder = Path(settings.model_registry)
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text())
            if not isinstance(data, dict):
                raise TypeError("expected a JSON object")
            if "detector" not in data:
                continue
            data["sources"] = tuple(data.get("sources", ()))
            spec = ModelSpec(**data)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"bad model registry file {path}: {exc}") from None
        if spec.name in out:
            raise ConfigError(f"model name {spec.name!r} is registered twice (in {path})")
        out[spec.name] = spec
    return out


def get_spec(settings: Settings, name: str) -> ModelSpec:
    """The registry entry for ``name`` or a clear error listing what exists."""
    specs = registry(settings)
    if name not in specs:
        raise ConfigError(f"unknown model {name!r}; registered models: {', '.join(sorted(specs)) or 'none'}")
    return specs[name]


def _locations(spec: ModelSpec, settings: Settings) -> list[Path]:
    return [Path(settings.model_cache) / spec.name, Path(settings.model_registry) / spec.name]


def find_weights(spec: ModelSpec, settings: Settings) -> Path | None:
    """Installed weights file for ``spec``, or None."""
    for folder in _locations(spec, settings):
        candidate = folder / spec.weights_file
        if spec.weights_file and candidate.is_file():
            return candidate
    return None


def require_weights(spec: ModelSpec, settings: Settings) -> tuple[Path, str]:
    """(weights path, sha256) or a ``ModelMissingError`` that says how to install them."""
    path = find_weights(spec, settings)
    if path is None:
        raise ModelMissingError(
            f"model {spec.name!r} ({spec.architecture} {spec.pretrained}) is not installed. "
            f"Install it with `scanner models pull {spec.name}` (needs network) or "
            f"`scanner models import {spec.name} /path/to/{spec.weights_file}`" + _test_model_hint(spec, settings)
        )
    return path, _known_sha256(path)


def model_flag(detector: str) -> str:
    """The command-line flag that picks ``detector``'s model: ``image.sscd`` -> ``--sscd-model``."""
    return f"--{detector.split('.', 1)[-1].replace('_', '-')}-model"


def _test_model_hint(spec: ModelSpec, settings: Settings) -> str:
    """A pointer to a test model of the same detector (random weights, nothing to install), if there is one."""
    try:
        tests = sorted(s.name for s in registry(settings).values() if s.detector == spec.detector and s.test_only)
    except ConfigError:
        return ""
    return f"; for a quick offline try-out use the test model: {model_flag(spec.detector)} {tests[0]}" if tests else ""


def _known_sha256(path: Path) -> str:
    receipt = path.parent / RECEIPT
    try:
        data = json.loads(receipt.read_text())
        st = path.stat()
        if (data.get("file"), data.get("size"), data.get("mtime_ns")) == (path.name, st.st_size, st.st_mtime_ns):
            return str(data["sha256"])
    except (OSError, ValueError, KeyError):
        pass
    digest = sha256_file(path)
    try:
        _write_receipt(path, digest, "found in place")
    except OSError:
        pass  # read-only model folder: hash again next time
    return digest


def _write_receipt(path: Path, digest: str, source: str) -> None:
    atomic_write_json(path.parent / RECEIPT, {
        "file": path.name, "sha256": digest, "size": path.stat().st_size, "mtime_ns": path.stat().st_mtime_ns,
        "source": source,
        "installed": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    })


def import_weights(spec: ModelSpec, settings: Settings, source: Path) -> Path:
    """Install a weights file into the cache after checking its sha256 against the registry."""
    if spec.test_only:
        raise ConfigError(f"{spec.name} is a test model with random weights; it has nothing to install")
    source = Path(source)
    if not source.is_file():
        raise ConfigError(f"weights file not found: {source}")
    digest = sha256_file(source)
    if spec.sha256 and digest != spec.sha256:
        raise ConfigError(
            f"{source} has sha256 {digest}, but the registry expects {spec.sha256} for {spec.name}; "
            "refusing to install a different file"
        )
    dest_dir = Path(settings.model_cache) / spec.name
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / spec.weights_file
    with tempfile.NamedTemporaryFile(dir=dest_dir, prefix=".import-", delete=False) as tmp:
        tmp_path = Path(tmp.name)
    try:
        shutil.copyfile(source, tmp_path)
        tmp_path.replace(dest)
    finally:
        tmp_path.unlink(missing_ok=True)
    _write_receipt(dest, digest, f"imported from {source.name}")
    return dest


def pull_weights(spec: ModelSpec, settings: Settings) -> Path:
    """Download weights through the model's framework (needs network), then install them."""
    if spec.test_only:
        raise ConfigError(f"{spec.name} is a test model with random weights; it has nothing to download")
    if spec.framework != "open_clip":
        raise ConfigError(f"no downloader for framework {spec.framework!r}")
    from open_clip.pretrained import download_pretrained, get_pretrained_cfg

    cfg = get_pretrained_cfg(spec.architecture, spec.pretrained)
    if not cfg:
        raise ConfigError(f"open_clip does not know {spec.architecture} / {spec.pretrained}")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            downloaded = download_pretrained(cfg, cache_dir=tmp)
        except Exception as exc:  # noqa: BLE001 - network stacks raise anything
            raise ModelMissingError(
                f"could not download {spec.name}: {exc}. On an offline machine, fetch "
                f"{spec.weights_file} elsewhere and run `scanner models import {spec.name} FILE`"
            ) from None
        return import_weights(spec, settings, Path(downloaded))
