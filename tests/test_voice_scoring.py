"""audio.voice scoring: multi-condition enrolment rows and segment-mean query rows (real weights).

Runs on the small CC-BY LibriSpeech fixtures in tests/fixtures/voices (two speakers); the figures
the levers were chosen on come from benchmarks/likeness.py on ../shared/data/voices.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from scanner.config import Settings
from scanner.models.package_weights import package_dir
from scanner.media.audio import AudioClip

pytest.importorskip("torch")
for _pkg, _pip in (("resemblyzer", "resemblyzer"), ("silero_vad", "silero-vad")):
    if package_dir(_pkg) is None:
        pytest.skip(f"{_pip} is not installed", allow_module_level=True)

from scanner.detectors.voice import (  # noqa: E402
    AUG_SNR_DB, DEGRADATIONS, REF_CONDITIONS, SR, VoiceDetector, _mix_at, _pink_noise, _synthetic_music,
    _synthetic_pads, degraded_copies,
)
from scanner.errors import ConfigError  # noqa: E402

VOICES = Path(__file__).parent / "fixtures" / "voices"


def _load(path: Path) -> AudioClip:
    sf = pytest.importorskip("soundfile")
    data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return AudioClip(data.mean(axis=1), sr)


@pytest.fixture(scope="module")
def det() -> VoiceDetector:
    return VoiceDetector(Settings())


@pytest.fixture(scope="module")
def plain() -> VoiceDetector:
    d = VoiceDetector(Settings())
    d.ref_conditions, d.segment_means, d.denoised_rows = (), False, False
    return d


@pytest.fixture(scope="module")
def clips() -> dict[str, AudioClip]:
    return {p.stem: _load(p) for p in sorted(VOICES.glob("*.flac"))}


def _white(x: np.ndarray, snr_db: float, seed: int = 5) -> np.ndarray:
    n = np.random.default_rng(seed).standard_normal(x.size).astype(np.float32)
    return (x + n * np.sqrt(np.mean(x ** 2) / (np.mean(n ** 2) * 10 ** (snr_db / 10)))).astype(np.float32)


def test_reference_rows_are_clean_then_one_per_condition(det, plain, clips):
    ref = det.embed_references([clips["speaker_a_1"]])[0]
    clean = plain.embed_references([clips["speaker_a_1"]])[0]
    assert ref.vectors.shape == (1 + len(REF_CONDITIONS), 256) and clean.vectors.shape == (1, 256)
    assert np.allclose(ref.vectors[0], clean.vectors[0], atol=1e-5)  # the clean row is the plain reference
    assert np.allclose(np.linalg.norm(ref.vectors, axis=1), 1.0, atol=1e-5)
    cos = ref.vectors[1:] @ ref.vectors[0]
    assert np.all(cos > 0.8) and np.all(cos < 0.999), cos  # near the voice, not copies of the clean row
    assert all(v.shape == (ref.vectors.shape[0],) for v in ref.extra.values())
    assert det.params["reference_rows"] == list(REF_CONDITIONS) and plain.params["reference_rows"] == ["clean"]


def test_noisy_query_scores_higher_against_multi_condition_rows(det, plain, clips):
    noisy = AudioClip(_white(clips["speaker_a_2"].samples, 10.0), SR)
    q_new, q_plain = det.embed_queries([noisy])[0], plain.embed_queries([noisy])[0]
    a_new, b_new = det.embed_references([clips["speaker_a_1"], clips["speaker_b_1"]])
    a_plain = plain.embed_references([clips["speaker_a_1"]])[0]
    genuine_new = float((q_new.vectors @ a_new.vectors.T).max())
    genuine_plain = float((q_plain.vectors @ a_plain.vectors.T).max())
    assert genuine_new > genuine_plain + 0.02, (genuine_new, genuine_plain)
    assert genuine_new > float((q_new.vectors @ b_new.vectors.T).max()) + 0.05


def test_plain_detector_has_no_segment_rows(plain, clips):
    q = plain.embed_queries([clips["speaker_a_2"]])[0]
    assert q.vectors.shape[0] >= 2 and not q.extra["segment_mean"].any()


def test_degraded_copies_are_deterministic_at_their_snr():
    x = (np.sin(2 * np.pi * 200 * np.arange(3 * SR) / SR) * 0.3).astype(np.float32)
    a, b = degraded_copies(x), degraded_copies(x)
    assert len(a) == len(REF_CONDITIONS) and all(np.array_equal(u, v) and u.shape == x.shape for u, v in zip(a, b))
    for i, bed in ((0, _pink_noise(x.size)), (1, _synthetic_music(x.size))):
        added = a[i] - x
        snr = 10 * np.log10(np.mean(x.astype(np.float64) ** 2) / np.mean(added.astype(np.float64) ** 2))
        assert abs(snr - AUG_SNR_DB) < 0.1
        assert abs(float(np.corrcoef(added, bed)[0, 1])) > 0.999  # the added signal is that bed
    assert np.isfinite(a[2]).all() and not np.allclose(a[2], x)


def test_degraded_copies_by_name_and_unknown_names_rejected():
    x = (np.sin(2 * np.pi * 200 * np.arange(3 * SR) / SR) * 0.3).astype(np.float32)
    (pads,) = degraded_copies(x, ("synthetic pads 0 dB",))
    added = pads - x
    snr = 10 * np.log10(np.mean(x.astype(np.float64) ** 2) / np.mean(added.astype(np.float64) ** 2))
    assert abs(snr) < 0.1  # equal loudness
    assert abs(float(np.corrcoef(added, _synthetic_pads(x.size))[0, 1])) > 0.999
    assert set(REF_CONDITIONS) <= set(DEGRADATIONS)
    with pytest.raises(ConfigError, match="unknown reference condition"):
        degraded_copies(x, ("pink noise 10 dB", "jet engine 0 dB"))


def test_synthetic_pads_are_deterministic_full_scale_and_not_the_chords_bed():
    a, b = _synthetic_pads(5 * SR), _synthetic_pads(5 * SR)
    assert np.array_equal(a, b) and a.dtype == np.float32 and np.isfinite(a).all()
    assert abs(float(np.abs(a).max()) - 1.0) < 1e-6
    assert not np.array_equal(a, _synthetic_pads(5 * SR, seed=29))
    assert abs(float(np.corrcoef(a, _synthetic_music(5 * SR))[0, 1])) < 0.2


def test_music_bed_at_equal_loudness_scores_higher_with_the_0db_row(det, clips):
    # a pads bed the reference row was not built from (other seed), as loud as the speech
    x = clips["speaker_a_2"].samples
    q = det.embed_queries([AudioClip(_mix_at(x, _synthetic_pads(x.size, seed=29), 0.0), SR)])[0]
    a, b = det.embed_references([clips["speaker_a_1"], clips["speaker_b_1"]])
    rows = [0] + [1 + i for i, c in enumerate(REF_CONDITIONS) if c != "synthetic pads 0 dB"]  # without it
    gen_all, gen_prev = float((q.vectors @ a.vectors.T).max()), float((q.vectors @ a.vectors[rows].T).max())
    imp_all, imp_prev = float((q.vectors @ b.vectors.T).max()), float((q.vectors @ b.vectors[rows].T).max())
    assert gen_all > gen_prev + 0.1, (gen_all, gen_prev)
    assert gen_all - imp_all > gen_prev - imp_prev + 0.03, (gen_all, imp_all, gen_prev, imp_prev)
