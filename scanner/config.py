"""Settings, resolved as: command line > environment (``SCANNER_*``) > config file > defaults.

The config file is TOML (``scanner.toml`` in the working directory, or ``--config``)::

    catalog = "catalog.db"
    index_dir = "indexes"
    sscd_model = "sscd-disc-mixup"
    detectors = ["image.pdq", "image.sscd", "image.local", "image.face", "audio.fingerprint", "audio.voice"]
    stage = "final"
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from scanner.catalog.url import catalog_target, is_catalog_url
from scanner.errors import ConfigError
from scanner.types import Stage

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG_NAME = "scanner.toml"


@dataclass(frozen=True)
class Settings:
    """Everything a scan needs to know about where things live and what to run."""

    catalog: Path | str = Path("catalog.db")  # a file (SQLite) or a postgresql:// URL (kept as a string)
    index_dir: Path = Path("indexes")
    model_registry: Path = REPO_ROOT / "models"
    model_cache: Path = Path(os.path.expanduser("~/.cache/scanner/models"))
    calibration: Path = Path(__file__).resolve().parent / "policy" / "calibration.json"
    detectors: tuple[str, ...] = ("image.pdq", "image.sscd", "image.local", "image.face", "audio.fingerprint",
                                   "audio.voice")
    clip_model: str = "clip-vit-b-32-laion2b"
    sscd_model: str = "sscd-disc-mixup"
    face_model: str = "face-dlib-resnet-v1"
    voice_model: str = "voice-resemblyzer-ge2e"
    stage: Stage = Stage.FINAL
    batch_size: int = 32
    max_pixels: int = 512_000_000
    max_file_bytes: int = 4 * 1024**3
    max_audio_seconds: int = 3 * 3600
    device: str = "auto"
    index_memory_mb: int = 8192  # budget per index in memory; larger catalogs get compressed (IVF-SQ8/PQ) indexes
    project: str = ""
    union_review: bool = True

    def absolute(self) -> "Settings":
        """Copy with every path made absolute (for worker processes that run in another directory)."""
        paths = {f.name: Path(os.path.abspath(getattr(self, f.name))) for f in fields(self)
                 if isinstance(getattr(self, f.name), Path)}
        return replace(self, **paths)

    def with_overrides(self, **values: Any) -> "Settings":
        """Copy with the non-None ``values`` applied (coerced to field types)."""
        clean = {k: v for k, v in values.items() if v is not None}
        return replace(self, **_coerce(clean))


def _coerce(values: dict[str, Any]) -> dict[str, Any]:
    known = {f.name: f for f in fields(Settings)}
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(f"unknown setting '{key}' (known: {', '.join(sorted(known))})")
        default = getattr(Settings, key)
        try:
            if key == "catalog":
                out[key] = catalog_target(value)
            elif isinstance(default, Path):
                out[key] = Path(os.path.expanduser(str(value)))
            elif isinstance(default, Stage):
                out[key] = Stage(str(value))
            elif isinstance(default, tuple):
                items = value.split(",") if isinstance(value, str) else list(value)
                out[key] = tuple(str(i).strip() for i in items if str(i).strip())
            elif isinstance(default, bool):
                text = str(value).strip().lower()
                if text not in {"1", "0", "true", "false", "yes", "no", "on", "off"}:
                    raise ValueError("expected true or false")
                out[key] = text in {"1", "true", "yes", "on"}
            elif isinstance(default, int):
                if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                    raise ValueError("expected a whole number")
                out[key] = int(value)
                if out[key] < 1:
                    raise ValueError("must be at least 1")
            else:
                out[key] = str(value)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"bad value for '{key}': {value!r} ({exc})") from None
    return out


def _from_file(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    # Relative paths in a config file are relative to the file, not to the cwd.
    for key, value in list(data.items()):
        if key in {"catalog", "index_dir", "model_registry", "model_cache", "calibration"} \
                and not is_catalog_url(value):
            p = Path(os.path.expanduser(str(value)))
            data[key] = p if p.is_absolute() else path.parent / p
    return data


def _from_env() -> dict[str, Any]:
    out = {}
    for f in fields(Settings):
        raw = os.environ.get(f"SCANNER_{f.name.upper()}")
        if raw is not None and raw != "":
            out[f.name] = raw
    return out


def load_settings(config: Path | None = None, **cli: Any) -> Settings:
    """Resolve settings from ``cli`` values, the environment and the config file."""
    values: dict[str, Any] = {}
    cfg = config or (Path(os.environ["SCANNER_CONFIG"]) if os.environ.get("SCANNER_CONFIG") else None)
    if cfg is None and Path(DEFAULT_CONFIG_NAME).is_file():
        cfg = Path(DEFAULT_CONFIG_NAME)
    if cfg is not None:
        values.update(_from_file(cfg))
    values.update(_from_env())
    values.update({k: v for k, v in cli.items() if v is not None})
    return Settings().with_overrides(**values)
