"""audio.voice's denoised query rows: RNNoise (pyrnnoise's librnnoise.so, loaded with ctypes) on each window.

Real library and weights on the small CC-BY LibriSpeech fixtures in tests/fixtures/voices (two speakers);
the figures the rows were chosen on come from benchmarks/likeness.py on ../shared/data/voices.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from scanner.config import REPO_ROOT, Settings
from scanner.errors import ConfigError, ModelMissingError
from scanner.media.audio import AudioClip
from scanner.models.package_weights import package_dir

pytest.importorskip("torch")
for _pkg, _pip in (("resemblyzer", "resemblyzer"), ("silero_vad", "silero-vad"), ("pyrnnoise", "pyrnnoise")):
    if package_dir(_pkg) is None:
        pytest.skip(f"{_pip} is not installed", allow_module_level=True)

from scanner.detectors import voice_denoise  # noqa: E402
from tests.test_voice import synth_music  # noqa: E402
from tests.test_voice_scoring import clips, det  # noqa: E402,F401 (the module's fixtures)
from scanner.detectors.voice import (  # noqa: E402
    DENOISE_MAX_DROP_DB, SR, VoiceDetector, _dbfs, _mix_at, _Speech,
)

REGISTRY = REPO_ROOT / "models" / "voice-resemblyzer-ge2e.json"


@pytest.fixture(scope="module")
def without() -> VoiceDetector:
    d = VoiceDetector(Settings().with_options("audio.voice", denoise=False))  # the documented fast option
    assert d.denoised_rows is False
    return d


def test_rnnoise_keeps_speech_and_removes_noise(det, clips):
    x = clips["speaker_a_1"].samples[: 4 * SR]
    noise = (np.random.default_rng(3).standard_normal(x.size) * 0.05).astype(np.float32)
    y, n = det._denoiser.denoise(x), det._denoiser.denoise(noise)
    assert y.shape == x.shape and y.dtype == np.float32 and np.isfinite(y).all()
    assert _dbfs(x) - _dbfs(y) < 3.0  # speech keeps its level
    assert _dbfs(noise) - _dbfs(n) > 30.0  # white noise is all but removed
    assert np.array_equal(det._denoiser.denoise(x), y)  # a fresh state per call: deterministic
    assert det._denoiser.denoise(np.zeros(0, np.float32)).size == 0


def test_every_window_gets_a_denoised_row_with_its_span(det, without, clips):
    clip = clips["speaker_a_2"]
    q, base = det.embed_queries([clip])[0], without.embed_queries([clip])[0]
    flag = q.extra["denoised"]
    assert not base.extra["denoised"].any() and base.vectors.shape[0] >= 2
    assert flag.tolist() == [False] * base.vectors.shape[0] + [True] * base.vectors.shape[0]
    assert np.array_equal(q.extra["start"][flag], base.extra["start"])
    assert np.array_equal(q.extra["end"][flag], base.extra["end"])
    assert np.allclose(q.vectors[~flag], base.vectors, atol=1e-5)  # the plain rows are unchanged
    cos = np.sum(q.vectors[flag] * base.vectors, axis=1)
    assert np.all(cos > 0.85) and np.all(cos < 0.9999), cos  # the same voice, not a copy of the row
    assert all(v.shape == (q.vectors.shape[0],) for v in q.extra.values())


def test_speech_under_music_at_equal_loudness_scores_higher_with_denoised_rows(det, without, clips):
    # a bed unlike the enrolment's synthetic rows: plucked notes, a bass line and hi-hats (tests/test_voice.py)
    x = clips["speaker_b_2"].samples
    mixed = AudioClip(_mix_at(x, np.resize(synth_music(30.0, seed=2), x.size), 0.0), SR)
    b, a = det.embed_references([clips["speaker_b_1"], clips["speaker_a_1"]])
    q, base = det.embed_queries([mixed])[0], without.embed_queries([mixed])[0]
    gen, gen0 = float((q.vectors @ b.vectors.T).max()), float((base.vectors @ b.vectors.T).max())
    imp, imp0 = float((q.vectors @ a.vectors.T).max()), float((base.vectors @ a.vectors.T).max())
    assert gen > gen0 + 0.05, (gen, gen0)  # measured 0.79 vs 0.65
    assert gen - imp > gen0 - imp0 + 0.05, (gen, imp, gen0, imp0)  # the margin too: 0.17 vs 0.05


def test_a_window_with_no_speech_left_gets_no_denoised_row(det, monkeypatch):
    # the VAD is told white noise is speech: RNNoise removes it (> DENOISE_MAX_DROP_DB), so only plain rows
    noise = (np.random.default_rng(1).standard_normal(8 * SR) * 0.1).astype(np.float32)
    monkeypatch.setattr(det, "_speech", lambda x: _Speech([(SR, 7 * SR)]))
    q = det.embed_queries([AudioClip(noise, SR)])[0]
    assert q.vectors.shape[0] >= 2 and not q.extra["denoised"].any()
    assert DENOISE_MAX_DROP_DB < 17.0  # below the least music alone lost in the measurement it was set on


def test_overlapping_windows_are_denoised_once_and_capped_clips_only_where_kept(det, clips, monkeypatch):
    seen: list[int] = []
    real = det._denoiser

    class Counting:
        def denoise(self, x):
            seen.append(x.size)
            return real.denoise(x)

    monkeypatch.setattr(det, "_denoiser", Counting())
    clip = clips["speaker_b_2"]
    speech = det._speech(clip.samples)
    det.embed_queries([clip])
    assert sum(seen) <= speech.total  # each run of speech once, not once per overlapping window
    seen.clear()
    speech_all = np.concatenate([clips[k].samples for k in sorted(clips)])
    long = np.tile(speech_all, int(np.ceil(600 * SR / speech_all.size)))[: 600 * SR]
    monkeypatch.setattr(det, "max_windows", 12)
    q = det.embed_queries([AudioClip(long, SR)])[0]
    assert sum(seen) <= 12 * det.window_s * SR and int(q.extra["denoised"].sum()) <= 12


def test_the_denoiser_is_query_side_only(det, without, clips):
    assert det.params == without.params  # indexes built before stay valid: references are unchanged
    r, r0 = det.embed_references([clips["speaker_a_1"]])[0], without.embed_references([clips["speaker_a_1"]])[0]
    assert np.array_equal(r.vectors, r0.vectors)
    assert "RNNoise" in det.describe() and "RNNoise" not in without.describe()
    assert det.denoise_sha256 == json.loads(REGISTRY.read_text())["config"]["files"]["denoise"]["sha256"]


def _registry_with_denoise(tmp_path: Path, **change) -> Settings:
    entry = json.loads(REGISTRY.read_text())
    entry["config"]["files"]["denoise"].update(change)
    (tmp_path / "voice.json").write_text(json.dumps(entry))
    return Settings(model_registry=tmp_path, model_cache=tmp_path / "cache")


def test_missing_or_altered_library_is_one_clear_error(tmp_path):
    with pytest.raises(ModelMissingError, match=r"pip install pyrnnoise==0\.4\.5"):
        VoiceDetector(_registry_with_denoise(tmp_path, package="no_such_rnnoise_pkg"))
    with pytest.raises(ConfigError, match="sha256"):
        VoiceDetector(_registry_with_denoise(tmp_path, sha256="0" * 64))


def test_library_is_loaded_once(det):
    path = str(package_dir("pyrnnoise") / "librnnoise.so")
    assert voice_denoise.load(path) is voice_denoise.load(path) is det._denoiser
