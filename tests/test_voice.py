"""audio.voice: Silero VAD + GE2E speaker embeddings (real weights from silero-vad and resemblyzer).

Always run: generated negatives (silence, noise, tones, synthetic music), the small CC-BY
LibriSpeech fixtures in tests/fixtures/voices (two speakers), window spans and caps, any
sample rate, spans in search hits and missing-model errors (determinism, batch == single and the
index round trip are the contract kit's, tests/test_contracts.py). With
../shared/data/voices: same-speaker scores above different-speaker scores.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from scanner.config import REPO_ROOT, Settings
from scanner.detectors.base import create
from scanner.models.package_weights import package_dir
from scanner.errors import ConfigError, ModelMissingError
from scanner.media.audio import AudioClip
from scanner.types import Metric

pytest.importorskip("torch")
for _pkg, _pip in (("resemblyzer", "resemblyzer"), ("silero_vad", "silero-vad")):
    if package_dir(_pkg) is None:
        pytest.skip(f"{_pip} is not installed", allow_module_level=True)

from scanner.detectors.voice import NO_SPEECH, REF_CONDITIONS, SR, VoiceDetector, _Speech  # noqa: E402

VOICES = Path(__file__).parent / "fixtures" / "voices"
SHARED_VOICES = REPO_ROOT.parent / "shared" / "data" / "voices"


def load_clip(path: Path) -> AudioClip:
    """16 kHz mono clip: the project's decoder when present, else soundfile."""
    try:
        from scanner.media.audio import decode_audio
    except ImportError:
        decode_audio = None
    if decode_audio is not None:
        return decode_audio(Path(path).read_bytes())
    sf = pytest.importorskip("soundfile")
    data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return AudioClip(data.mean(axis=1), sr)


def _resample(x: np.ndarray, sr: int) -> np.ndarray:
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(sr, SR)
    return resample_poly(x, sr // g, SR // g).astype(np.float32)


def synth_music(seconds: float = 12.0, seed: int = 0) -> np.ndarray:
    """Instrumental test piece: harmonic notes with envelopes over a bass line, plus hi-hat noise."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    out = np.zeros(n)
    beat = 0.25
    for k in range(int(seconds / beat)):
        a = int(k * beat * SR)
        length = int(beat * SR * rng.choice([1, 2]))
        seg = np.arange(min(length, n - a)) / SR
        env = np.exp(-seg * 6) * np.minimum(1, seg * 200)
        f0 = 220 * 2 ** (rng.choice([0, 2, 4, 5, 7, 9, 11, 12]) / 12)
        note = sum(np.sin(2 * np.pi * f0 * h * seg) / h for h in range(1, 6))
        out[a: a + seg.size] += 0.15 * env * note
        if k % 2 == 0:
            hat = rng.standard_normal(min(400, n - a)) * np.exp(-np.arange(min(400, n - a)) / 80)
            out[a: a + hat.size] += 0.05 * hat
    out += 0.1 * np.sin(2 * np.pi * 55 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 0.5 * t))
    return (out / np.abs(out).max() * 0.6).astype(np.float32)


@pytest.fixture(scope="module")
def det() -> VoiceDetector:
    return VoiceDetector(Settings())


@pytest.fixture(scope="module")
def clips() -> dict[str, AudioClip]:
    return {p.stem: load_clip(p) for p in sorted(VOICES.glob("*.flac"))}


def test_registered_with_real_model(det):
    d = create("audio.voice", Settings())
    assert isinstance(d, VoiceDetector)
    spec = json.loads((REPO_ROOT / "models" / "voice-resemblyzer-ge2e.json").read_text())
    assert d.model_id == spec["name"] == "voice-resemblyzer-ge2e"
    assert d.weights_sha256 == spec["sha256"]
    assert (d.dim, d.metric, d.modality, d.references) == (256, Metric.COSINE, "audio", "talent")
    assert d.params["window_s"] == 3.0 and d.params["vad"].startswith("silero:")


_rng = np.random.default_rng(0)
NEGATIVES = {
    "silence": np.zeros(10 * SR, np.float32),
    "empty": np.zeros(0, np.float32),
    "a few samples": np.full(100, 0.1, np.float32),
    "hiss": (_rng.standard_normal(10 * SR) * 0.003).astype(np.float32),
    "white noise": (_rng.standard_normal(10 * SR) * 0.2).astype(np.float32),
    "brown noise": (np.cumsum(_rng.standard_normal(10 * SR)) / 400).astype(np.float32).clip(-1, 1),
    "tone 440 Hz": (0.4 * np.sin(2 * np.pi * 440 * np.arange(8 * SR) / SR)).astype(np.float32),
    "sweep": (0.4 * np.sin(2 * np.pi * (100 + 25 * np.arange(8 * SR) / SR) * np.arange(8 * SR) / SR)
              ).astype(np.float32),
    "music": synth_music(),
    "clipped square": np.sign(np.sin(2 * np.pi * 110 * np.arange(5 * SR) / SR)).astype(np.float32),
}


@pytest.mark.parametrize("name", sorted(NEGATIVES))
def test_no_speech_is_a_normal_empty_result(det, name):
    clip = AudioClip(NEGATIVES[name], SR)
    q = det.embed_queries([clip])[0]
    assert q.empty and q.note == NO_SPEECH, q.note
    assert q.vectors.shape == (0, 256) and q.extra["start"].shape == (0,)
    r = det.embed_references([clip])[0]
    assert r.empty and r.note == NO_SPEECH


def test_same_speaker_scores_above_other_speaker(det, clips):
    refs = det.embed_references([clips[k] for k in ("speaker_a_1", "speaker_a_2", "speaker_b_1", "speaker_b_2")])
    a1, a2, b1, b2 = (r.vectors[0] for r in refs)
    assert all(r.vectors.shape == (1 + len(REF_CONDITIONS), 256) and r.note == "" for r in refs)
    same = min(a1 @ a2, b1 @ b2)
    other = max(a1 @ b1, a1 @ b2, a2 @ b1, a2 @ b2)
    assert same > other + 0.1, (same, other)


def test_query_windows_have_spans_and_match_their_speaker(det, clips):
    clip = clips["speaker_a_2"]
    q = det.embed_queries([clip])[0]
    win = ~q.extra["segment_mean"] & ~q.extra["denoised"]
    n = int(win.sum())
    assert n >= 2 and q.note == ""
    start, end = q.extra["start"][win], q.extra["end"][win]
    assert start.shape == end.shape == (n,)
    assert np.all(start >= 0) and np.all(end <= clip.duration + 1e-6) and np.all(end > start)
    assert np.all(np.diff(start) > 0)
    assert np.all(end - start >= 1.0)
    a, b = (r.vectors[0] for r in det.embed_references([clips["speaker_a_1"], clips["speaker_b_1"]]))
    assert (q.vectors[win] @ a).mean() > (q.vectors[win] @ b).mean() + 0.1


@pytest.mark.parametrize("sr", [8000, 22050, 44100, 96000])
def test_any_sample_rate_gives_the_same_voice(det, clips, sr):
    base = clips["speaker_a_1"]
    ref16 = det.embed_references([base])[0].vectors[0]
    other = AudioClip(_resample(base.samples, sr), sr)
    e = det.embed_references([other])[0]
    assert not e.empty
    floor = 0.8 if sr == 8000 else 0.95  # 8 kHz loses everything above 4 kHz
    assert float(e.vectors[0] @ ref16) > floor
    q = det.embed_queries([other])[0]
    assert not q.empty and q.extra["end"].max() <= base.duration + 0.05


def test_stereo_and_loudness_do_not_matter(det, clips):
    x = clips["speaker_b_1"].samples
    ref = det.embed_references([clips["speaker_b_1"]])[0].vectors[0]
    stereo = np.stack([x * 0.1, x * 0.1], axis=1)  # 20 dB quieter, two channels
    e = det.embed_references([AudioClip(stereo, SR)])[0]
    assert float(e.vectors[0] @ ref) > 0.98


def test_too_little_speech_for_a_reference(det, clips):
    clip = clips["speaker_a_1"]
    regions = det.speech_regions(clip)
    a, _ = regions[0]
    short = clip.samples[int(a * SR): int((a + 0.8) * SR)]
    r = det.embed_references([AudioClip(np.concatenate([np.zeros(SR, np.float32), short]), SR)])[0]
    assert r.empty and r.note.startswith("too little speech") and "at least 1.5 s" in r.note


def test_window_layout_over_speech_segments(det, monkeypatch):
    # 20 s clip; speech 1-9 s and 9.5-10.5 s (one segment: gap < 1 s), and 15-16.5 s (its own segment)
    regions = [(1 * SR, 9 * SR), (int(9.5 * SR), int(10.5 * SR)), (15 * SR, int(16.5 * SR))]
    monkeypatch.setattr(det, "_speech", lambda x: _Speech(regions))
    monkeypatch.setattr(det, "segment_means", True)
    clip = AudioClip((np.random.default_rng(1).standard_normal(20 * SR) * 0.1).astype(np.float32), SR)
    q = det.embed_queries([clip])[0]
    start, end = q.extra["start"].tolist(), q.extra["end"].tolist()
    # first segment: 9 s of speech -> windows at speech 0, 1.5, 3, 4.5, 6 s (the last one ends at 9 s of speech)
    assert start[:5] == [1.0, 2.5, 4.0, 5.5, 7.0]
    assert end[4] == 10.5  # 9 s of speech: 8 s in the first region + 1 s after the 0.5 s pause
    assert (start[5], end[5]) == (15.0, 16.5)  # a short segment is one window
    # then one mean row for the segment of five windows (none for the one-window segment)
    assert q.extra["segment_mean"].tolist() == [False] * 6 + [True]
    assert (start[6], end[6]) == (1.0, 10.5) and q.vectors.shape == (7, 256)
    m = q.vectors[:5].mean(axis=0)
    assert np.allclose(q.vectors[6], m / np.linalg.norm(m), atol=1e-6)


def test_long_clip_is_capped_and_spread(det, clips):
    speech = np.concatenate([clips[k].samples for k in sorted(clips)])
    long = np.tile(speech, int(np.ceil(600 * SR / speech.size)))[: 600 * SR]  # 10 minutes of talk
    capped = VoiceDetector(Settings(), max_windows=12)
    q = capped.embed_queries([AudioClip(long, SR)])[0]
    plain_windows = ~q.extra["segment_mean"] & ~q.extra["denoised"]
    assert int(plain_windows.sum()) == 12 and int(q.extra["denoised"].sum()) <= 12 and q.vectors.shape[0] <= 12 + 6 + 12
    assert "12 of " in q.note and "spread evenly" in q.note
    assert q.extra["start"].min() < 30 and q.extra["end"].max() > 570


def test_search_reports_the_span(det, clips):
    refs = det.embed_references([clips["speaker_a_1"], clips["speaker_b_1"]])
    index = det.new_index()
    for ref_id, e in zip((5, 6), refs):
        index.add(np.full(e.vectors.shape[0], ref_id), e.vectors)
    hits = det.search(index, det.embed_queries([clips["speaker_b_2"], AudioClip(NEGATIVES["silence"], SR)]))
    best = max(hits[0], key=lambda h: h.score)
    assert best.ref_id == 6
    assert 0 <= best.extra["start"] < best.extra["end"]
    assert hits[1] == []


def _registry_with(tmp_path: Path, config: dict) -> Settings:
    entry = json.loads((REPO_ROOT / "models" / "voice-resemblyzer-ge2e.json").read_text())
    entry["config"].update(config)
    (tmp_path / "voice.json").write_text(json.dumps(entry))
    return Settings(model_registry=tmp_path, model_cache=tmp_path / "cache")


def test_missing_packages_say_what_to_install(tmp_path):
    with pytest.raises(ModelMissingError, match="pip install resemblyzer==0.1.4"):
        VoiceDetector(_registry_with(tmp_path, {"package": "no_such_encoder_pkg"}))
    vad = json.loads((REPO_ROOT / "models" / "voice-resemblyzer-ge2e.json").read_text())["config"]["files"]["vad"]
    with pytest.raises(ModelMissingError, match="pip install silero-vad"):
        VoiceDetector(_registry_with(tmp_path, {"files": {"vad": dict(vad, package="no_such_vad_pkg")}}))


def test_bad_params_are_config_errors():
    with pytest.raises(ConfigError):
        VoiceDetector(Settings(), window_s=0.2)


# ------------------------------------------------------------------ real data (../shared)


@pytest.mark.shared_data
@pytest.mark.skipif(not SHARED_VOICES.is_dir(), reason="../shared/data/voices absent")
def test_shared_voices_same_speaker_above_different_speaker(det):
    files = sorted(SHARED_VOICES.glob("*/*.flac"))[::2]  # half of each speaker's utterances keeps it quick
    assert len(files) >= 20
    embs = det.embed_references([load_clip(f) for f in files])
    keep = [(f.parent.name, e.vectors[0]) for f, e in zip(files, embs) if not e.empty]
    assert len(keep) >= len(files) - 2
    spk = np.array([s for s, _ in keep])
    m = np.stack([v for _, v in keep])
    sims = m @ m.T
    upper = np.triu(np.ones_like(sims, bool), 1)
    same = sims[upper & (spk[:, None] == spk[None, :])]
    diff = sims[upper & (spk[:, None] != spk[None, :])]
    assert same.mean() > diff.mean() + 0.2
    # closed-set identification: each utterance's nearest other utterance is the same speaker
    np.fill_diagonal(sims, -1)
    assert (spk[sims.argmax(axis=1)] == spk).mean() >= 0.9
