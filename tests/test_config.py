"""Settings resolution: command line > environment (SCANNER_*) > TOML file > defaults."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from scanner.config import Settings, load_settings
from scanner.errors import ConfigError
from scanner.types import Stage


pytestmark = pytest.mark.usefixtures("clean_env")  # fixture in conftest.py


def _clip(s: Settings) -> str | None:
    """The image.clip model the settings set (older files say ``clip_model``; read as its option)."""
    return s.options_of("image.clip").get("model")


def _toml(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_defaults_without_anything():
    s = load_settings()
    assert s == Settings()
    assert s.stage is Stage.FINAL
    assert s.detectors == ("image.pdq", "image.sscd", "image.local", "image.face", "audio.fingerprint", "audio.voice")
    assert s.batch_size == 32


def test_file_overrides_defaults(tmp_path):
    cfg = _toml(tmp_path / "conf" / "scanner.toml", 'clip_model = "from-file"\nbatch_size = 8\nstage = "ideation"\n'
                'detectors = ["image.pdq"]\n')
    s = load_settings(cfg)
    assert _clip(s) == "from-file"
    assert s.batch_size == 8
    assert s.stage is Stage.IDEATION
    assert s.detectors == ("image.pdq",)
    assert s.device == Settings().device  # untouched keys keep defaults


def test_precedence_cli_over_env_over_file_over_default(tmp_path, monkeypatch):
    cfg = _toml(tmp_path / "scanner.toml", 'clip_model = "file"\nbatch_size = 8\ndevice = "cpu"\nstage = "ideation"\n')
    monkeypatch.setenv("SCANNER_CLIP_MODEL", "env")
    monkeypatch.setenv("SCANNER_BATCH_SIZE", "16")
    s = load_settings(cfg, clip_model="cli", batch_size=None)
    assert _clip(s) == "cli"  # cli beats env and file
    assert s.batch_size == 16  # None on the cli means "not given": env wins over file
    assert s.device == "cpu"  # only in the file
    assert s.stage is Stage.IDEATION
    assert s.max_pixels == Settings().max_pixels  # nowhere: default


def test_env_over_file_for_paths(tmp_path, monkeypatch):
    cfg = _toml(tmp_path / "c" / "scanner.toml", 'catalog = "file.db"\n')
    monkeypatch.setenv("SCANNER_CATALOG", str(tmp_path / "env.db"))
    assert load_settings(cfg).catalog == tmp_path / "env.db"
    assert load_settings(cfg, catalog=str(tmp_path / "cli.db")).catalog == tmp_path / "cli.db"


def test_empty_env_value_is_ignored(tmp_path, monkeypatch):
    cfg = _toml(tmp_path / "scanner.toml", 'clip_model = "file"\n')
    monkeypatch.setenv("SCANNER_CLIP_MODEL", "")
    assert _clip(load_settings(cfg)) == "file"


def test_env_types_are_coerced(monkeypatch):
    monkeypatch.setenv("SCANNER_DETECTORS", " image.pdq , ,image.clip ")
    monkeypatch.setenv("SCANNER_STAGE", "ideation")
    monkeypatch.setenv("SCANNER_MAX_PIXELS", "1000")
    monkeypatch.setenv("SCANNER_INDEX_DIR", "some/where")
    s = load_settings()
    assert s.detectors == ("image.pdq", "image.clip")
    assert s.stage is Stage.IDEATION
    assert s.max_pixels == 1000
    assert s.index_dir == Path("some/where")  # env paths stay relative to the cwd


def test_every_field_reads_its_env_variable(monkeypatch):
    # a value that each field's coercion accepts
    sample = {Path: "x/y", Stage: "ideation", tuple: "a,b", bool: "false", int: "7", str: "zzz"}
    expected = {}
    for f in fields(Settings):
        if f.name == "detector_options":  # one variable per option (SCANNER_IMAGE_FACE_MIN_FACE): test_options.py
            continue
        default = getattr(Settings, f.name)
        t = next(t for t in (Path, Stage, tuple, bool, int, str) if isinstance(default, t))
        monkeypatch.setenv(f"SCANNER_{f.name.upper()}", sample[t])
        expected[f.name] = t
    s = load_settings()
    for name, t in expected.items():
        value = getattr(s, name)
        assert value != getattr(Settings, name), name
        assert isinstance(value, t), name


def test_relative_paths_in_file_resolve_against_file(tmp_path):
    conf_dir = tmp_path / "project" / "conf"
    cfg = _toml(conf_dir / "scanner.toml",
                'catalog = "data/catalog.db"\nindex_dir = "../indexes"\nmodel_registry = "reg"\n'
                'model_cache = "cache"\ncalibration = "cal.json"\n')
    s = load_settings(cfg)
    assert s.catalog == conf_dir / "data" / "catalog.db"
    assert s.index_dir == conf_dir / ".." / "indexes"
    assert s.model_registry == conf_dir / "reg"
    assert s.model_cache == conf_dir / "cache"
    assert s.calibration == conf_dir / "cal.json"


def test_absolute_and_home_paths_in_file_are_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    cfg = _toml(tmp_path / "c" / "scanner.toml",
                f'catalog = "{tmp_path / "abs.db"}"\nindex_dir = "~/idx"\n')
    s = load_settings(cfg)
    assert s.catalog == tmp_path / "abs.db"
    assert s.index_dir == tmp_path / "home" / "idx"


def test_default_config_file_in_cwd_is_used(clean_env):
    _toml(clean_env / "scanner.toml", 'clip_model = "cwd-file"\ncatalog = "cat.db"\n')
    s = load_settings()
    assert _clip(s) == "cwd-file"
    assert s.catalog.resolve() == (clean_env / "cat.db").resolve()


def test_scanner_config_env_points_to_file(tmp_path, monkeypatch, clean_env):
    _toml(clean_env / "scanner.toml", 'clip_model = "cwd-file"\n')
    other = _toml(tmp_path / "elsewhere" / "x.toml", 'clip_model = "env-file"\n')
    monkeypatch.setenv("SCANNER_CONFIG", str(other))
    assert _clip(load_settings()) == "env-file"
    # an explicit --config beats SCANNER_CONFIG
    explicit = _toml(tmp_path / "explicit.toml", 'clip_model = "explicit"\n')
    assert _clip(load_settings(explicit)) == "explicit"


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml")


def test_invalid_toml(tmp_path):
    cfg = _toml(tmp_path / "scanner.toml", "catalog = \n[[[")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(cfg)


def test_unknown_key_in_file(tmp_path):
    cfg = _toml(tmp_path / "scanner.toml", 'catalogue = "typo.db"\n')
    with pytest.raises(ConfigError, match="unknown setting 'catalogue'"):
        load_settings(cfg)


def test_unknown_cli_key():
    with pytest.raises(ConfigError, match="unknown setting"):
        load_settings(colour="red")


@pytest.mark.parametrize(
    "text, key",
    [
        ('batch_size = "lots"\n', "batch_size"),
        ('stage = "production"\n', "stage"),
        ('max_pixels = "1e9x"\n', "max_pixels"),
    ],
)
def test_bad_values_in_file(tmp_path, text, key):
    cfg = _toml(tmp_path / "scanner.toml", text)
    with pytest.raises(ConfigError, match=key):
        load_settings(cfg)


@pytest.mark.parametrize(
    "text, key",
    [
        ("detectors = 5\n", "detectors"),
        ("batch_size = [1, 2]\n", "batch_size"),
        ("max_file_bytes = {a = 1}\n", "max_file_bytes"),
    ],
)
def test_wrongly_typed_values_in_file_are_config_errors(tmp_path, text, key):
    """A TOML value of the wrong type must be a one-line ConfigError, not a TypeError traceback."""
    cfg = _toml(tmp_path / "scanner.toml", text)
    with pytest.raises(ConfigError, match=key):
        load_settings(cfg)


def test_bad_env_values(monkeypatch):
    monkeypatch.setenv("SCANNER_BATCH_SIZE", "many")
    with pytest.raises(ConfigError, match="batch_size"):
        load_settings()
    monkeypatch.setenv("SCANNER_BATCH_SIZE", "4")
    monkeypatch.setenv("SCANNER_STAGE", "FINAL!")
    with pytest.raises(ConfigError, match="stage"):
        load_settings()


def test_bad_cli_value():
    with pytest.raises(ConfigError, match="stage"):
        load_settings(stage="nope")


def test_config_error_is_user_facing():
    from scanner.errors import ScannerError

    assert issubclass(ConfigError, ScannerError)
    assert ConfigError.exit_code == 4  # "could not run", apart from 2 "some asset unreadable"


def test_with_overrides_skips_none_and_coerces():
    s = Settings().with_overrides(batch_size="4", catalog=None, stage="ideation", detectors=["image.pdq"])
    assert s.batch_size == 4
    assert s.catalog == Settings().catalog
    assert s.stage is Stage.IDEATION
    assert s.detectors == ("image.pdq",)
