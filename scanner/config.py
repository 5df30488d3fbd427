"""Settings, resolved as: command line > environment (``SCANNER_*``) > config file > defaults.

The config file is TOML (``scanner.toml`` in the working directory, or ``--config``)::

    catalog = "catalog.db"
    index_dir = "indexes"
    stage = "final"

    [detectors]
    enabled = ["image.pdq", "image.sscd", "image.local", "image.face", "audio.fingerprint", "audio.voice"]

    [detectors."image.sscd"]
    model = "sscd-distilled-mnv4"

    [detectors."image.face"]
    min_face = 40

``[detectors]`` holds which detectors run (``enabled``) and one table per detector with its options:
the fields of that detector's ``Options`` (``scanner detectors --options`` lists them). A file without
options may keep the short form ``detectors = ["image.pdq", ...]``. Unknown detectors, unknown option
keys and values of the wrong type are a ``ConfigError`` that lists what is allowed.

Environment: ``SCANNER_<SETTING>`` (``SCANNER_DETECTORS=image.pdq,image.sscd``) and, for detector
options, ``SCANNER_<DETECTOR>_<KEY>`` with the name's dots as underscores (``SCANNER_IMAGE_SSCD_MODEL``,
``SCANNER_IMAGE_FACE_MIN_FACE=40``). Command line: ``--detectors`` and ``--<kind>-model``
(``--sscd-model``, ``--face-model``...), generated from the model registry.

Older files that name a model per detector (``sscd_model = "..."``, ``SCANNER_SSCD_MODEL``) still
work: ``<kind>_model`` is read as ``[detectors."<modality>.<kind>"] model``.

``Settings`` is frozen, hashable and picklable (it travels to worker processes); detector options are
stored as sorted ``(detector, ((key, value), ...))`` tuples, only the values the user changed, and are
checked against the detector registry when set (which imports the detector modules, not their models).
"""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Mapping

from scanner.catalog.url import catalog_target, is_catalog_url
from scanner.errors import ConfigError
from scanner.types import Stage

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG_NAME = "scanner.toml"
OPTIONS_FIELD = "detector_options"
ENABLED_KEY = "enabled"  # in the [detectors] table: which detectors run

# detector name -> ((key, value), ...), sorted: the frozen, hashable form of a detector-options mapping
DetectorOptionsTuple = tuple[tuple[str, tuple[tuple[str, Any], ...]], ...]


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
    # What the user changed in each detector's Options (see the module docstring); a dict is accepted
    # and frozen: Settings(detector_options={"image.sscd": {"model": "sscd-distilled-mnv4"}}).
    detector_options: DetectorOptionsTuple = ()
    stage: Stage = Stage.FINAL
    batch_size: int = 32
    max_pixels: int = 512_000_000
    max_file_bytes: int = 4 * 1024**3
    max_audio_seconds: int = 3 * 3600
    device: str = "auto"
    index_memory_mb: int = 8192  # MiB one index may hold (0: no limit); choose_index plans within it (PQ/SQ8 kinds)
    project: str = ""
    union_review: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.detector_options, Mapping) or any(
                not isinstance(v, tuple) for _, v in self.detector_options):
            object.__setattr__(self, OPTIONS_FIELD, _freeze(_checked_options(_thaw(self.detector_options))))

    def options_of(self, detector: str) -> dict[str, Any]:
        """The options set for ``detector`` (only those changed from its defaults)."""
        return dict(dict(self.detector_options).get(detector, ()))

    def with_options(self, detector: str, **values: Any) -> "Settings":
        """Copy with ``detector``'s options ``values`` set (checked against its ``Options``)."""
        return self.with_overrides(**{OPTIONS_FIELD: {detector: values}})

    def absolute(self) -> "Settings":
        """Copy with every path made absolute (for worker processes that run in another directory)."""
        paths = {f.name: Path(os.path.abspath(getattr(self, f.name))) for f in fields(self)
                 if isinstance(getattr(self, f.name), Path)}
        return replace(self, **paths)

    def with_overrides(self, **values: Any) -> "Settings":
        """Copy with the non-None ``values`` applied (coerced to field types). ``detector_options``
        (detector -> {key: value}) is merged key by key into the options already set; an older
        ``<kind>_model`` key sets that detector's model."""
        clean = _migrate({k: v for k, v in values.items() if v is not None})
        out = _coerce(clean)
        if OPTIONS_FIELD in out:
            out[OPTIONS_FIELD] = _freeze(_merge_options(_thaw(self.detector_options), out[OPTIONS_FIELD]))
        return replace(self, **out)


def _thaw(options: DetectorOptionsTuple | Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    items = options.items() if isinstance(options, Mapping) else options
    out: dict[str, dict[str, Any]] = {}
    for name, values in items:
        if not isinstance(values, (Mapping, tuple, list)):
            raise ConfigError(f"options of detector {name!r} must be a table of key = value, not {values!r}")
        out[str(name)] = dict(values.items() if isinstance(values, Mapping) else values)
    return out


def _freeze(options: Mapping[str, Mapping[str, Any]]) -> DetectorOptionsTuple:
    return tuple(sorted((name, tuple(sorted(values.items()))) for name, values in options.items() if values))


def _merge_options(base: dict[str, dict[str, Any]], new: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    out = {name: dict(values) for name, values in base.items()}
    for name, values in new.items():
        out.setdefault(name, {}).update(values)
    return out


def _checked_options(options: dict[str, dict[str, Any]], where: str = "") -> dict[str, dict[str, Any]]:
    """Every detector's options checked and coerced against its ``Options`` (imports the detector registry)."""
    if not options:
        return {}
    from scanner.detectors.base import check_options

    return {name: check_options(name, values, where) for name, values in options.items()}


def _detector_names() -> list[str]:
    from scanner.detectors.base import detector_names

    return detector_names()


def _legacy_detector(key: str) -> str | None:
    """The detector an older ``<kind>_model`` setting was for (``sscd_model`` -> ``image.sscd``), or None."""
    if not key.endswith("_model") or key in Settings.__dataclass_fields__:
        return None
    kind = key[: -len("_model")]
    matches = [n for n in _detector_names() if n.split(".", 1)[-1] == kind]
    return matches[0] if len(matches) == 1 else None


def _migrate(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with older ``<kind>_model`` keys moved into ``detector_options`` (where both name a
    detector's model, the ``detector_options`` one wins)."""
    legacy = {k: d for k in values if (d := _legacy_detector(k))} if any(
        k.endswith("_model") and k not in Settings.__dataclass_fields__ for k in values) else {}
    if not legacy:
        return values
    out = {k: v for k, v in values.items() if k not in legacy}
    moved = {det: {"model": values[key]} for key, det in legacy.items()}
    out[OPTIONS_FIELD] = _merge_options(moved, _thaw(out.get(OPTIONS_FIELD, {})))
    return out


def _coerce(values: dict[str, Any]) -> dict[str, Any]:
    known = {f.name: f for f in fields(Settings)}
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(f"unknown setting '{key}' (known: {', '.join(sorted(known))}; detector options go "
                              f'in [detectors."<name>"] tables, see `scanner detectors --options`)')
        if key == OPTIONS_FIELD:
            out[key] = _checked_options(_thaw(value))
            continue
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
    table = data.get("detectors")
    if isinstance(table, dict):  # [detectors]: `enabled` plus one table of options per detector
        if ENABLED_KEY in table:
            data["detectors"] = table[ENABLED_KEY]
        else:
            del data["detectors"]
        opts = {k: v for k, v in table.items() if k != ENABLED_KEY}
        bad = [k for k, v in opts.items() if not isinstance(v, dict)]
        if bad:
            raise ConfigError(f'config file {path}: [detectors] holds `{ENABLED_KEY} = [...]` and one table per '
                              f'detector ([detectors."image.face"] min_face = 40); {", ".join(bad)} is neither')
        data[OPTIONS_FIELD] = _checked_options(opts, f"config file {path}")
    # Relative paths in a config file are relative to the file, not to the cwd.
    for key, value in list(data.items()):
        if key in {"catalog", "index_dir", "model_registry", "model_cache", "calibration"} \
                and not is_catalog_url(value):
            p = Path(os.path.expanduser(str(value)))
            data[key] = p if p.is_absolute() else path.parent / p
    return data


def env_name(detector: str, key: str) -> str:
    """The environment variable of one detector option: ``("image.sscd", "model")`` -> ``SCANNER_IMAGE_SSCD_MODEL``."""
    return "SCANNER_" + f"{detector}_{key}".replace(".", "_").replace("-", "_").upper()


def _from_env() -> dict[str, Any]:
    out: dict[str, Any] = {}
    plain = {f"SCANNER_{f.name.upper()}" for f in fields(Settings) if f.name != OPTIONS_FIELD} | {"SCANNER_CONFIG"}
    for f in fields(Settings):
        raw = os.environ.get(f"SCANNER_{f.name.upper()}")
        if f.name != OPTIONS_FIELD and raw is not None and raw != "":
            out[f.name] = raw
    others = {k: v for k, v in os.environ.items() if k.startswith("SCANNER_") and k not in plain and v != ""}
    if others:  # detector options (and older SCANNER_<KIND>_MODEL): only these need the detector registry
        from scanner.detectors.base import option_types

        opts: dict[str, dict[str, Any]] = {}
        for name in _detector_names():
            for key in option_types(name):
                raw = others.get(env_name(name, key))
                if raw is not None:
                    opts.setdefault(name, {})[key] = raw
        for var, raw in others.items():
            det = _legacy_detector(var[len("SCANNER_"):].lower())
            if det and "model" not in opts.get(det, {}):  # the new name wins over the old one
                opts.setdefault(det, {})["model"] = raw
        if opts:
            out[OPTIONS_FIELD] = _checked_options(opts, "environment")
    return out


def load_settings(config: Path | None = None, **cli: Any) -> Settings:
    """Resolve settings from ``cli`` values, the environment and the config file."""
    values: dict[str, Any] = {}
    cfg = config or (Path(os.environ["SCANNER_CONFIG"]) if os.environ.get("SCANNER_CONFIG") else None)
    if cfg is None and Path(DEFAULT_CONFIG_NAME).is_file():
        cfg = Path(DEFAULT_CONFIG_NAME)
    layers = [_from_file(cfg)] if cfg is not None else []
    layers += [_from_env(), {k: v for k, v in cli.items() if v is not None}]
    for layer in layers:
        layer = _migrate(layer)
        options = _merge_options(_thaw(values.get(OPTIONS_FIELD, {})), _thaw(layer.pop(OPTIONS_FIELD, {})))
        values.update(layer)
        if options:
            values[OPTIONS_FIELD] = options
    return Settings().with_overrides(**values)
