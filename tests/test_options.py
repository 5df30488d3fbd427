"""Detector options (``[detectors."<name>"]``, ``SCANNER_<DETECTOR>_<KEY>``, ``--<kind>-model``), model
resolution through ``scanner.models.resolve`` and gating floors read from the calibration file."""

from __future__ import annotations

import json
import pickle
from dataclasses import fields
from pathlib import Path

import pytest
from typer.testing import CliRunner

from scanner.cli import app
from scanner.config import Settings, env_name, load_settings
from scanner.detectors.base import (
    DetectorOptions, create, detector_class, detector_names, floors_for, option_types, options_for,
)
from scanner.errors import CalibrationError, ConfigError
from scanner.models import model_name, resolve
from scanner.policy.calibration import load_calibration, merge_calibration, thresholds_digest
from scanner.types import Metric, Stage


pytestmark = pytest.mark.usefixtures("clean_env")  # fixture in conftest.py


def _toml(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# ------------------------------------------------------------------ every detector describes itself


@pytest.mark.parametrize("name", detector_names())
def test_every_detector_declares_frozen_options_with_its_default_model(name):
    cls = detector_class(name)
    assert issubclass(cls.Options, DetectorOptions)
    opts = cls.Options()
    with pytest.raises(AttributeError):
        opts.model = "x"  # frozen
    hash(opts)
    if opts.model:  # a learned model: the registry has it, for this detector
        assert model_name(Settings(), name) == opts.model
        from scanner.models import get_spec

        assert get_spec(Settings(), opts.model).detector == name
    else:
        assert "model" not in option_types(name)  # nothing to choose


def test_defaults_are_the_models_the_settings_fields_had():
    # the values of the former clip_model / sscd_model / face_model / voice_model settings
    assert {n: options_for(n, Settings()).model for n in ("image.clip", "image.sscd", "image.face", "audio.voice")} \
        == {"image.clip": "clip-vit-b-32-laion2b", "image.sscd": "sscd-disc-mixup",
            "image.face": "face-dlib-resnet-v1", "audio.voice": "voice-resemblyzer-ge2e"}
    assert options_for("image.face", Settings()).min_face == 32


# ------------------------------------------------------------------ the TOML table


def test_table_sets_options_and_enabled_list(tmp_path):
    cfg = _toml(tmp_path / "scanner.toml", '[detectors]\nenabled = ["image.pdq", "image.face"]\n\n'
                '[detectors."image.face"]\nmodel = "face-dlib-resnet-v1"\nmin_face = 40\ncascade = false\n\n'
                '[detectors."image.sscd"]\nmodel = "sscd-distilled-mnv4"\n')
    s = load_settings(cfg)
    assert s.detectors == ("image.pdq", "image.face")
    face = options_for("image.face", s)
    assert (face.min_face, face.cascade, face.model) == (40, False, "face-dlib-resnet-v1")
    assert options_for("image.sscd", s).model == "sscd-distilled-mnv4"
    assert options_for("image.clip", s) == detector_class("image.clip").Options()  # untouched: defaults


def test_table_without_enabled_keeps_the_default_list(tmp_path):
    cfg = _toml(tmp_path / "scanner.toml", '[detectors."image.face"]\nmin_face = 40\n')
    s = load_settings(cfg)
    assert s.detectors == Settings().detectors and options_for("image.face", s).min_face == 40


def test_short_list_form_still_works(tmp_path):
    assert load_settings(_toml(tmp_path / "s.toml", 'detectors = ["image.pdq"]\n')).detectors == ("image.pdq",)


@pytest.mark.parametrize("text, message", [
    ('[detectors."image.nope"]\nmodel = "x"\n', r"unknown detector 'image.nope'; available: .*image.face"),
    ('[detectors."image.face"]\nmin_fac = 40\n', r"unknown option 'min_fac' for detector image.face .*"
                                                r"its options: model, detector, min_face"),
    ('[detectors."image.face"]\nmin_face = "big"\n', r"bad value for option 'min_face' of detector image.face.*"
                                                    r"expected int"),
    ('[detectors."image.face"]\ncascade = 3\n', r"option 'cascade'.*expected true or false"),
    ('[detectors."image.face"]\nmin_face = 40.5\n', r"min_face.*whole number"),
    ('[detectors."image.pdq"]\nmodel = "x"\n', r"unknown option 'model' for detector image.pdq.*it has no options"),
    ('[detectors]\n"image.face" = 3\n', r"\[detectors\] holds `enabled = \[...\]` and one table per detector"),
])
def test_bad_tables_are_clear_config_errors(tmp_path, text, message):
    cfg = _toml(tmp_path / "scanner.toml", text)
    with pytest.raises(ConfigError, match=message):
        load_settings(cfg)


def test_error_names_the_file(tmp_path):
    cfg = _toml(tmp_path / "mine.toml", '[detectors."image.face"]\nmin_fac = 40\n')
    with pytest.raises(ConfigError, match="mine.toml"):
        load_settings(cfg)


# ------------------------------------------------------------------ older files and variables


def test_old_model_keys_in_a_file_are_migrated(tmp_path):
    cfg = _toml(tmp_path / "scanner.toml", 'sscd_model = "sscd-distilled-mnv4"\nface_model = "face-x"\n'
                'detectors = ["image.sscd"]\n')
    s = load_settings(cfg)
    assert s.options_of("image.sscd") == {"model": "sscd-distilled-mnv4"}
    assert s.options_of("image.face") == {"model": "face-x"}
    assert s.detectors == ("image.sscd",)


def test_table_wins_over_an_old_key_in_the_same_file(tmp_path):
    cfg = _toml(tmp_path / "scanner.toml", 'sscd_model = "old"\n[detectors."image.sscd"]\nmodel = "new"\n')
    assert load_settings(cfg).options_of("image.sscd") == {"model": "new"}


def test_unknown_old_style_key_is_still_an_unknown_setting(tmp_path):
    with pytest.raises(ConfigError, match="unknown setting 'nope_model'"):
        load_settings(_toml(tmp_path / "scanner.toml", 'nope_model = "x"\n'))


def test_old_environment_variable_still_works_and_the_new_one_wins(monkeypatch):
    monkeypatch.setenv("SCANNER_SSCD_MODEL", "old-env")
    assert load_settings().options_of("image.sscd") == {"model": "old-env"}
    monkeypatch.setenv("SCANNER_IMAGE_SSCD_MODEL", "new-env")
    assert load_settings().options_of("image.sscd") == {"model": "new-env"}


# ------------------------------------------------------------------ environment and precedence


def test_environment_sets_options_with_types(monkeypatch):
    monkeypatch.setenv("SCANNER_IMAGE_FACE_MIN_FACE", "40")
    monkeypatch.setenv("SCANNER_IMAGE_FACE_CASCADE", "off")
    monkeypatch.setenv("SCANNER_AUDIO_VOICE_WINDOW_S", "2.5")
    s = load_settings()
    assert (options_for("image.face", s).min_face, options_for("image.face", s).cascade) == (40, False)
    assert options_for("audio.voice", s).window_s == 2.5


def test_bad_environment_value_names_the_environment(monkeypatch):
    monkeypatch.setenv("SCANNER_IMAGE_FACE_MIN_FACE", "lots")
    with pytest.raises(ConfigError, match=r"min_face.*\(environment\)"):
        load_settings()


def test_every_option_has_its_environment_variable(monkeypatch):
    sample = {str: "zzz", int: "7", float: "0.5", bool: "false"}
    for name in detector_names():
        for key, kind in option_types(name).items():
            monkeypatch.setenv(env_name(name, key), sample[kind])
    s = load_settings()
    for name in detector_names():
        opts = options_for(name, s)
        for key, kind in option_types(name).items():
            want = False if kind is bool else kind(sample[kind])
            assert getattr(opts, key) == want and type(getattr(opts, key)) is kind, (name, key)


def test_file_then_environment_then_command_line_key_by_key(tmp_path, monkeypatch):
    cfg = _toml(tmp_path / "scanner.toml", '[detectors."image.face"]\nmodel = "file-model"\nmin_face = 40\n'
                'max_faces = 10\n')
    monkeypatch.setenv("SCANNER_IMAGE_FACE_MIN_FACE", "50")
    s = load_settings(cfg, face_model="cli-model")  # what --face-model passes
    assert s.options_of("image.face") == {"model": "cli-model", "min_face": 50, "max_faces": 10}


# ------------------------------------------------------------------ the settings object


def test_settings_with_options_stay_hashable_picklable_and_absolute():
    s = Settings().with_options("image.face", min_face=40).with_options("image.sscd", model="sscd-distilled-mnv4")
    assert s.options_of("image.face") == {"min_face": 40}
    assert hash(s) == hash(pickle.loads(pickle.dumps(s)))
    assert pickle.loads(pickle.dumps(s)) == s
    assert s.absolute().detector_options == s.detector_options
    assert Settings(detector_options={"image.face": {"min_face": 40}}).options_of("image.face") == {"min_face": 40}
    with pytest.raises(ConfigError, match="unknown option"):
        Settings(detector_options={"image.face": {"min_fac": 40}})


def test_with_options_merges_and_the_order_does_not_matter():
    a = Settings().with_options("image.face", min_face=40).with_options("image.face", max_faces=3)
    b = Settings().with_options("image.face", max_faces=3, min_face=40)
    assert a == b and a.options_of("image.face") == {"min_face": 40, "max_faces": 3}


def test_no_settings_field_per_model_is_left():
    assert not [f.name for f in fields(Settings) if f.name.endswith("_model")]


# ------------------------------------------------------------------ command line


def test_model_flags_are_generated_for_every_detector_with_registry_models():
    from scanner.cli.common import SETTINGS_OPTIONS
    from scanner.models import registry

    kinds = {s.detector.split(".", 1)[1] for s in registry(Settings()).values()}
    assert {f"{k}_model" for k in kinds} <= set(SETTINGS_OPTIONS)
    assert {"sscd_model", "clip_model", "face_model", "voice_model"} <= set(SETTINGS_OPTIONS)


def test_model_flag_reaches_the_detector_options():
    r = CliRunner().invoke(app, ["detectors", "--json", "--sscd-model", "sscd-distilled-mnv4"])
    assert r.exit_code == 0, r.output
    rows = {row["name"]: row for row in map(json.loads, r.stdout.splitlines())}
    assert rows["image.sscd"]["model"] == "sscd-distilled-mnv4"
    assert rows["image.sscd"]["options"]["model"] == "sscd-distilled-mnv4"
    assert rows["image.face"]["options"]["min_face"] == 32


def test_detectors_options_lists_values_defaults_and_variables(monkeypatch):
    monkeypatch.setenv("SCANNER_IMAGE_FACE_MIN_FACE", "40")
    r = CliRunner().invoke(app, ["detectors", "--options"], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    face = [line for line in r.output.splitlines() if "min_face" in line][0]
    assert "40" in face and "32" in face and "SCANNER_IMAGE_FACE_MIN_FACE" in face


def test_bad_model_on_the_command_line_is_a_clear_error():
    r = CliRunner().invoke(app, ["detectors", "--json", "--face-model", "no-such-model"])
    assert r.exit_code == 0  # listing says the model is not registered instead of failing
    rows = {row["name"]: row for row in map(json.loads, r.stdout.splitlines())}
    assert "not in the registry" in rows["image.face"]["installed"]


# ------------------------------------------------------------------ model resolution


def test_resolve_finds_spec_and_weights_of_the_option_model():
    got = resolve(Settings().with_options("image.clip", model="clip-test-tiny"), "image.clip")
    assert got.spec.name == "clip-test-tiny" and got.weights is None and got.sha256.startswith("random-seed-")


def test_resolve_refuses_a_model_of_another_detector():
    with pytest.raises(ConfigError, match="'clip-test-tiny' is for image.clip, not image.sscd"):
        resolve(Settings().with_options("image.sscd", model="clip-test-tiny"), "image.sscd")


def test_resolve_refuses_unknown_models_listing_registered_ones():
    with pytest.raises(ConfigError, match="unknown model 'nope'; registered models: .*sscd-disc-mixup"):
        resolve(Settings().with_options("image.sscd", model="nope"), "image.sscd")


def test_detector_without_learned_model_has_nothing_to_resolve():
    with pytest.raises(ConfigError, match="image.pdq has no learned model"):
        resolve(Settings(), "image.pdq")


def test_missing_weights_hint_names_the_detectors_test_model(tmp_path):
    from scanner.errors import ModelMissingError

    with pytest.raises(ModelMissingError, match="--clip-model clip-test-tiny"):
        resolve(Settings(model_cache=tmp_path), "image.clip")


# ------------------------------------------------------------------ gating floors


def _calibration(tmp_path, entries: dict) -> Path:
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps({"version": "t", "detectors": entries}))
    return path


def _levels(metric="count", block=12, review=10):
    lv = {"block": block, "review": review}
    return {"metric": metric, "final": lv, "ideation": lv}


def test_repository_calibration_has_floors_for_every_entry_and_count_metrics():
    cal = load_calibration(Settings().calibration)
    for det, models in cal.detectors.items():
        for model in models:
            cal.floors(det, model, detector_class(det).FLOORS)
    assert cal.detectors["image.local"]["rootsift-v1"]["metric"] == Metric.COUNT.value
    assert cal.detectors["audio.fingerprint"]["landmark-triplet-v1"]["metric"] == Metric.COUNT.value
    # the values the code constants had: behaviour is unchanged
    assert cal.floors("image.local", "rootsift-v1") == {"search_k": 8, "min_tentative": 8, "min_inliers": 10,
                                                        "min_cover": 0.05}
    assert cal.floors("audio.fingerprint", "landmark-triplet-v1") == {"min_hit_matches": 8}
    assert cal.floors("image.pdq", "pdq") == {"search_k": 10, "min_quality": 50}
    assert cal.floors("image.sscd", "sscd-disc-mixup") == {"search_k": 10, "min_std": 1.0}
    assert cal.floors("audio.melody", "melody-basic-pitch") == {"min_votes": 2}
    assert cal.floors("audio.voice", "voice-resemblyzer-ge2e") == {"search_k": 10, "min_ref_speech_s": 1.5,
                                                                   "min_window_speech_s": 1.0}


def test_detectors_read_their_floors_at_creation(tmp_path):
    entry = {**_levels(), "floors": {"search_k": 3, "min_tentative": 5, "min_inliers": 7, "min_cover": 0.1}}
    path = _calibration(tmp_path, {"image.local": {"rootsift-v1": entry}})
    det = create("image.local", Settings(calibration=path))
    assert (det.search_k, det.min_tentative, det.min_inliers, det.min_cover) == (3, 5, 7, 0.1)
    pdq = {**_levels("hamming", 30, 40), "floors": {"search_k": 4, "min_quality": 80}}
    assert create("image.pdq", Settings(calibration=_calibration(tmp_path, {"image.pdq": {"pdq": pdq}}))) \
        .min_quality == 80


def test_an_entry_without_floors_is_a_clear_calibration_error(tmp_path):
    path = _calibration(tmp_path, {"image.pdq": {"pdq": _levels("hamming", 30, 40)}})
    with pytest.raises(CalibrationError, match=r'no gating floors for image.pdq with model .pdq.*"floors": '
                                               r'\{"search_k": "...", "min_quality": "..."\}'):
        create("image.pdq", Settings(calibration=path))


def test_a_detector_with_no_entry_is_a_clear_calibration_error(tmp_path):
    path = _calibration(tmp_path, {})
    with pytest.raises(CalibrationError, match="no gating floors for audio.fingerprint.*has no calibrated model"):
        create("audio.fingerprint", Settings(calibration=path))


def test_a_missing_floor_is_named(tmp_path):
    entry = {**_levels("hamming", 30, 40), "floors": {"search_k": 10}}
    path = _calibration(tmp_path, {"image.pdq": {"pdq": entry}})
    with pytest.raises(CalibrationError, match="lack min_quality"):
        floors_for("image.pdq", Settings(calibration=path), "pdq")


def test_an_uncalibrated_model_runs_with_the_floors_its_detector_shares(tmp_path):
    entry = {**_levels("cosine", 0.9, 0.8), "floors": {"search_k": 10, "min_std": 1.0}}
    path = _calibration(tmp_path, {"image.sscd": {"a": entry, "b": entry}})
    assert floors_for("image.sscd", Settings(calibration=path), "new-model") == {"search_k": 10, "min_std": 1.0}
    other = {**entry, "floors": {"search_k": 5, "min_std": 1.0}}
    path = _calibration(tmp_path, {"image.sscd": {"a": entry, "b": other}})
    with pytest.raises(CalibrationError, match="no gating floors"):
        floors_for("image.sscd", Settings(calibration=path), "new-model")


@pytest.mark.parametrize("floors", [{"search_k": -1}, {"search_k": "8"}, {"search_k": True}, [8]])
def test_load_calibration_validates_floors(tmp_path, floors):
    path = _calibration(tmp_path, {"image.pdq": {"pdq": {**_levels("hamming", 30, 40), "floors": floors}}})
    with pytest.raises(CalibrationError, match="malformed"):
        load_calibration(path)


def test_floors_count_in_the_thresholds_digest():
    a = {"image.pdq": {"pdq": {**_levels("hamming", 30, 40), "floors": {"search_k": 10}}}}
    b = {"image.pdq": {"pdq": {**_levels("hamming", 30, 40), "floors": {"search_k": 11}}}}
    assert thresholds_digest(a) != thresholds_digest(b)


def test_a_benchmarks_new_levels_keep_the_stored_floors(tmp_path):
    entry = {**_levels("hamming", 30, 40), "floors": {"search_k": 10, "min_quality": 50}}
    path = _calibration(tmp_path, {"image.pdq": {"pdq": entry}})
    merge_calibration(path, {("image.pdq", "pdq"): _levels("hamming", 31, 41)}, "bench", "benchmarks/bench.py x")
    stored = json.loads(path.read_text())["detectors"]["image.pdq"]["pdq"]
    assert stored["floors"] == {"search_k": 10, "min_quality": 50} and stored["final"]["block"] == 31


def test_calibration_error_names_no_particular_detector(tmp_path):
    path = _calibration(tmp_path, {"image.sscd": {"a": _levels("cosine", 0.9, 0.8)}})
    cal = load_calibration(path)
    with pytest.raises(CalibrationError) as exc:
        cal.thresholds("image.sscd", "other", Stage.FINAL)
    assert "image.clip" not in str(exc.value) and "calibrated models of image.sscd: a" in str(exc.value)


def test_an_index_saved_under_the_old_cosine_label_for_counts_is_refused_with_the_rebuild_hint(tmp_path):
    """image.local and audio.fingerprint scores are counts now; an index whose manifest says cosine is refused."""
    from scanner.errors import IndexMismatchError
    from scanner.index.store import MANIFEST, IndexStore

    det = create("audio.fingerprint", Settings())
    store = IndexStore(tmp_path / "indexes")
    store.save(det.name, det.new_index(), det.model_id, det.weights_sha256, {}, det.params)
    manifest = store.folder(det.name) / MANIFEST
    data = json.loads(manifest.read_text())
    assert data["metric"] == "count"
    manifest.write_text(json.dumps({**data, "metric": "cosine"}))
    with pytest.raises(IndexMismatchError, match=r"metric cosine \(running count\).*--rebuild"):
        store.load(det.name, det.model_id, det.weights_sha256, det.dim, det.metric, det.load_index, det.params)
