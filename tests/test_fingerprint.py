"""``audio.fingerprint`` on generated music: excerpts, edits, mixtures, bad input, index round trip.

Everything here is synthesised (``scanner.testing.audio``); the one real-data check skips
when ``../shared/data/music`` is absent.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("av")
pytest.importorskip("scipy")

from scipy import signal  # noqa: E402

from scanner.config import Settings  # noqa: E402
from scanner.detectors import create  # noqa: E402
from scanner.detectors import fingerprint as fp  # noqa: E402
from scanner.detectors.fingerprint import FingerprintDetector, LandmarkParams  # noqa: E402
from scanner.errors import IndexCorruptError, IndexMismatchError  # noqa: E402
from scanner.index import IndexStore  # noqa: E402
from scanner.index.landmarks import BYTES_PER_ROW, LandmarkIndex  # noqa: E402
from scanner.media.audio import AudioClip, decode_audio  # noqa: E402
from scanner.policy import load_calibration  # noqa: E402
from scanner.testing.audio import encode_audio, synth_music  # noqa: E402
from scanner.types import Metric, Stage  # noqa: E402

SR = 16000
REF_SECONDS = 30.0
REF_SEEDS = (11, 12, 13, 14, 15)
SPAN_TOL = 0.2
MUSIC = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "music"


@pytest.fixture(scope="module")
def det() -> FingerprintDetector:
    return FingerprintDetector()


@pytest.fixture(scope="module")
def refs() -> dict[int, np.ndarray]:
    """Reference id -> 30 s of its piece."""
    return {100 + i: synth_music(seed, REF_SECONDS, SR) for i, seed in enumerate(REF_SEEDS)}


@pytest.fixture(scope="module")
def index(det, refs) -> LandmarkIndex:
    idx = det.new_index()
    for ref_id, emb in zip(refs, det.embed_references([AudioClip(x, SR) for x in refs.values()])):
        assert not emb.empty
        idx.add(np.full(emb.vectors.shape[0], ref_id), emb.vectors, emb.extra)
    return idx


@pytest.fixture(scope="module")
def review_threshold(det) -> float:
    """The calibrated review threshold (final stage): what the policy would flag."""
    return load_calibration(Settings().calibration).thresholds(det.name, det.model_id, Stage.FINAL).review


def search(det, index, x: np.ndarray, sr: int = SR):
    return det.search(index, det.embed_queries([AudioClip(np.asarray(x, np.float32), sr)]))[0]


def hit_for(hits, ref_id):
    found = [h for h in hits if h.ref_id == ref_id]
    return found[0] if found else None


def excerpt(refs, ref_id: int, start: float, seconds: float) -> np.ndarray:
    return refs[ref_id][int(start * SR):int((start + seconds) * SR)].copy()


def add_noise(x: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    power = float(np.mean(x**2))
    return (x + rng.normal(0, np.sqrt(power / 10 ** (snr_db / 10)), x.size)).astype(np.float32)


def assert_found(hits, ref_id, threshold, ref_start=None, asset_offset=0.0, scale=1.0):
    """``ref_id`` is the top hit, passes ``threshold``, and (when given) the spans line up:
    asset time ``a`` corresponds to reference time ``ref_start + (a - asset_offset) * scale``."""
    h = hit_for(hits, ref_id)
    assert h is not None, f"work {ref_id} not found: {hits}"
    assert hits[0].ref_id == ref_id, f"another work scores higher: {hits}"
    assert h.score >= threshold, f"score {h.score} under the review threshold {threshold}"
    e = h.extra
    assert e["matches"] >= h.score and e["asset_end"] > e["asset_start"] and e["ref_end"] > e["ref_start"]
    if ref_start is not None:
        expect = ref_start + (e["asset_start"] - asset_offset) * scale
        assert e["ref_start"] == pytest.approx(expect, abs=SPAN_TOL), e
        expect_end = ref_start + (e["asset_end"] - asset_offset) * scale
        assert e["ref_end"] == pytest.approx(expect_end, abs=SPAN_TOL + 0.01 * (e["asset_end"] - e["asset_start"])), e
    return h


# --------------------------------------------------------------------------- contract


def test_registered_with_metric_and_params(det):
    d = create("audio.fingerprint", Settings())
    assert type(d) is FingerprintDetector and d.modality == "audio" and d.metric is Metric.COUNT
    assert d.model_id == fp.MODEL_ID and d.weights_sha256 == "none" and d.dim == 1
    params = d.params
    for key in ("sr", "n_fft", "hop", "bins_per_octave", "fan", "hash_layout"):
        assert key in params
    assert FingerprintDetector(params=LandmarkParams(fan=4)).params != params


def test_blockwise_equals_whole(det, refs, monkeypatch):
    clip = AudioClip(np.concatenate([refs[100], refs[101]]), SR)  # 60 s
    a = det.embed(clip)
    monkeypatch.setattr(fp, "BLOCK_FRAMES", 700)  # many blocks: peaks must not depend on block edges
    c = det.embed(clip)
    assert np.array_equal(a.vectors, c.vectors)
    assert np.array_equal(a.extra["t"], c.extra["t"])


def test_any_input_rate_is_resampled(det, refs, index, review_threshold):
    x = excerpt(refs, 102, 4.0, 8.0)
    for rate in (8000, 44100):
        y = signal.resample_poly(x, rate, SR).astype(np.float32)
        assert_found(search(det, index, y, rate), 102, review_threshold, ref_start=4.0)


# --------------------------------------------------------------------------- finding copies


def test_excerpt_inside_other_music_is_found_with_its_span(det, refs, index, review_threshold):
    pad = synth_music(901, 3.0, SR)
    tail = synth_music(902, 2.0, SR)
    x = np.concatenate([pad, excerpt(refs, 101, 11.3, 8.0), tail])
    h = assert_found(search(det, index, x), 101, review_threshold, ref_start=11.3, asset_offset=3.0)
    assert h.extra["asset_start"] >= 3.0 - SPAN_TOL and h.extra["asset_end"] <= 11.0 + SPAN_TOL
    assert h.extra["asset_end"] - h.extra["asset_start"] > 6.0
    assert h.extra["time_scale"] == pytest.approx(1.0, abs=0.005)


def test_five_second_excerpt_anywhere(det, refs, index, review_threshold):
    for ref_id, start in ((100, 0.0), (103, 17.45), (104, 24.9)):
        assert_found(search(det, index, excerpt(refs, ref_id, start, 5.0)), ref_id, review_threshold, ref_start=start)


def test_noise_at_5_db_snr(det, refs, index, review_threshold):
    x = add_noise(excerpt(refs, 103, 6.0, 10.0), 5.0)
    assert_found(search(det, index, x), 103, review_threshold, ref_start=6.0)


def test_lossy_band_limited_quiet_copy(det, refs, index, review_threshold):
    x = excerpt(refs, 100, 9.0, 10.0)
    sos = signal.butter(4, [300, 3400], btype="bandpass", fs=SR, output="sos")
    y = 0.05 * signal.sosfilt(sos, x)  # telephone band, -26 dB
    y = decode_audio(encode_audio(y.astype(np.float32), SR, "mp3", bitrate=64000)).samples
    assert_found(search(det, index, y), 100, review_threshold)


@pytest.mark.parametrize("speed", [0.95, 1.05])
def test_speed_change_plus_minus_5_percent(det, refs, index, review_threshold, speed):
    """Resampled playback: tempo and pitch change together."""
    src = excerpt(refs, 104, 5.0, 10.0 * speed)
    y = signal.resample_poly(src, 1000, int(round(1000 * speed))).astype(np.float32)
    h = assert_found(search(det, index, y), 104, review_threshold, ref_start=5.0, scale=speed)
    assert h.extra["time_scale"] == pytest.approx(1 / speed, abs=0.01)
    assert h.extra["pitch_shift"] == pytest.approx(12 * np.log2(speed), abs=0.3)


@pytest.mark.parametrize("ratio", [0.95, 1.05])
def test_pitch_shift_plus_minus_5_percent(det, refs, index, review_threshold, ratio):
    librosa = pytest.importorskip("librosa")
    y = librosa.effects.pitch_shift(excerpt(refs, 102, 12.0, 10.0), sr=SR, n_steps=12 * np.log2(ratio))
    h = assert_found(search(det, index, y), 102, review_threshold, ref_start=12.0)
    assert h.extra["pitch_shift"] == pytest.approx(12 * np.log2(ratio), abs=0.3)


@pytest.mark.parametrize("rate", [0.95, 1.05])
def test_time_stretch_plus_minus_5_percent(det, refs, index, review_threshold, rate):
    librosa = pytest.importorskip("librosa")
    y = librosa.effects.time_stretch(excerpt(refs, 101, 2.0, 10.0 * rate), rate=rate)
    h = assert_found(search(det, index, y), 101, review_threshold, ref_start=2.0, scale=rate)
    assert h.extra["time_scale"] == pytest.approx(1 / rate, abs=0.01)


def test_mixture_of_two_works_reports_both(det, refs, index, review_threshold):
    a = excerpt(refs, 100, 3.0, 10.0)
    b = excerpt(refs, 103, 15.0, 10.0)
    layered = a + b  # both at once, equal level: they compete for spectral peaks
    hits = search(det, index, layered)
    for ref_id, start in ((100, 3.0), (103, 15.0)):
        h = hit_for(hits, ref_id)
        assert h is not None, hits  # both reported ...
        assert h.extra["ref_start"] == pytest.approx(start + h.extra["asset_start"], abs=SPAN_TOL)
    assert max(h.score for h in hits) >= review_threshold  # ... the dominant one above the review threshold
    # one after the other, separated by unrelated music: each with its own asset span
    seq = np.concatenate([a, synth_music(903, 2.0, SR), b])
    hits = search(det, index, seq)
    ha, hb = hit_for(hits, 100), hit_for(hits, 103)
    assert ha and hb and min(ha.score, hb.score) >= review_threshold
    assert ha.extra["asset_end"] <= 10.0 + SPAN_TOL and hb.extra["asset_start"] >= 12.0 - SPAN_TOL
    assert len({h.ref_id for h in hits}) == len(hits)  # one hit per work


def test_unrelated_music_is_not_flagged(det, index, review_threshold):
    for seed in (501, 502, 503):
        hits = search(det, index, synth_music(seed, 20.0, SR))
        assert all(h.score < review_threshold for h in hits), hits


# --------------------------------------------------------------------------- bad input


def test_silence_and_too_short_give_an_empty_embedding_with_a_note(det, index):
    silent = det.embed(AudioClip(np.zeros(5 * SR, np.float32), SR))
    assert silent.empty and "silent" in silent.note
    dc_only = det.embed(AudioClip(np.full(5 * SR, 0.3, np.float32), SR))
    assert dc_only.empty and "audio.fingerprint" in dc_only.note
    short = det.embed(AudioClip(np.ones(SR // 4, np.float32), SR))
    assert short.empty and "too short" in short.note
    assert det.search(index, [silent, short]) == [[], []]
    assert det.embed(AudioClip(np.zeros(0, np.float32), SR)).empty
    assert det.embed(AudioClip(np.full(2 * SR, np.nan, np.float32), SR)).empty  # NaN from float PCM


def test_dc_offset_and_clipping_still_match(det, refs, index, review_threshold):
    x = excerpt(refs, 104, 20.0, 8.0)
    assert_found(search(det, index, np.clip(x + 0.4, -1, 1)), 104, review_threshold, ref_start=20.0)
    assert_found(search(det, index, np.clip(x * 6.0, -1, 1)), 104, review_threshold, ref_start=20.0)


@pytest.mark.parametrize("rate, fmt", [(8000, "wav"), (96000, "wav"), (192000, "flac")])
def test_high_and_low_sample_rate_files(det, refs, index, review_threshold, rate, fmt):
    x = signal.resample_poly(excerpt(refs, 103, 1.0, 8.0), rate, SR).astype(np.float32)
    clip = decode_audio(encode_audio(x, rate, fmt))
    assert clip.source_sr == rate
    hits = det.search(index, det.embed_queries([clip]))[0]
    assert_found(hits, 103, review_threshold, ref_start=1.0)


# --------------------------------------------------------------------------- index


def test_index_with_other_params_is_refused(det, index, tmp_path):
    """(The store round trip itself is the contract kit's, tests/test_contracts.py.)"""
    store = IndexStore(tmp_path / "indexes")
    store.save(det.name, index, det.model_id, det.weights_sha256, params=det.params)
    other = FingerprintDetector(params=LandmarkParams(fan=4))
    with pytest.raises(IndexMismatchError, match="parameters"):
        store.load(det.name, other.model_id, other.weights_sha256, other.dim, other.metric, other.load_index,
                   other.params)


def test_remove_a_work(det, refs, index):
    copy = det.load_index(index.to_bytes())
    q = det.embed_queries([AudioClip(excerpt(refs, 102, 3.0, 6.0), SR)])
    assert hit_for(det.search(copy, q)[0], 102) is not None
    rows = copy.rows
    gone = copy.remove(np.array([102]))
    assert gone > 0 and copy.rows == rows - gone
    assert 102 not in copy.ids().tolist() and len(copy) == len(REF_SEEDS) - 1
    assert hit_for(det.search(copy, q)[0], 102) is None
    assert copy.remove(np.array([102])) == 0


def test_index_rejects_bad_rows_and_reports_size(index):
    idx = LandmarkIndex()
    assert idx.lookup(np.array([1, 2])).query.size == 0 and idx.lookup(np.array([], np.int64)).query.size == 0
    with pytest.raises(ValueError):
        idx.add(np.array([1]), np.array([[5]]), {"t": np.array([0])})  # no f/dt
    with pytest.raises(ValueError):
        idx.add(np.array([1]), np.array([[2**33]]), {"t": [0], "f": [0], "dt": [0]})
    with pytest.raises(ValueError):
        idx.add(np.array([-1]), np.array([[3]]), {"t": [0], "f": [0], "dt": [0]})
    idx.add(np.array([1, 1]), np.array([[7], [3]]), {"t": [10, 20], "f": [1, 2], "dt": [5, 6]})
    m = idx.lookup(np.array([3, 9, 7, 7]))
    assert m.query.tolist() == [0, 2, 3] and m.t.tolist() == [20, 10, 10]
    assert idx.nbytes == 2 * BYTES_PER_ROW + idx._offsets.nbytes
    assert len(LandmarkIndex.from_bytes(idx.to_bytes()).ids()) == 1
    for bad in (b"", b"not an index", idx.to_bytes()[:100]):
        with pytest.raises(IndexCorruptError):
            LandmarkIndex.from_bytes(bad)
    # 11 bytes per landmark: the synthetic references need well under 10 MB per hour (plus the directory)
    assert index.rows * BYTES_PER_ROW / (len(REF_SEEDS) * REF_SECONDS / 3600) < 10e6


def test_thirty_second_query_is_fast(det, refs, index):
    clip_bytes = encode_audio(np.concatenate([refs[100][: 15 * SR], refs[101][: 15 * SR]]), SR, "wav")
    det.search(index, det.embed_queries([decode_audio(clip_bytes)]))  # warm-up
    t0 = time.process_time()
    hits = det.search(index, det.embed_queries([decode_audio(clip_bytes)]))[0]
    cpu = time.process_time() - t0
    assert {100, 101} <= {h.ref_id for h in hits}
    assert cpu < 1.0, f"30 s query took {cpu:.2f} s of CPU"


# --------------------------------------------------------------------------- real data (optional)


@pytest.mark.shared_data
def test_real_recording_excerpt_when_shared_data_present(det):
    files = sorted(MUSIC.glob("*.ogg")) if MUSIC.is_dir() else []
    if len(files) < 3:
        pytest.skip(f"no music under {MUSIC}")
    clips = [decode_audio(f.read_bytes()) for f in files[:3]]
    idx = det.new_index()
    for i, emb in enumerate(det.embed_references(clips)):
        idx.add(np.full(emb.vectors.shape[0], i), emb.vectors, emb.extra)
    longest = int(np.argmax([c.duration for c in clips]))
    c = clips[longest]
    start = c.duration / 3
    x = add_noise(c.samples[int(start * SR):int((start + 10) * SR)], 5.0)
    hits = det.search(idx, det.embed_queries([AudioClip(x, SR)]))[0]
    assert hits and hits[0].ref_id == longest
    assert hits[0].extra["ref_start"] - hits[0].extra["asset_start"] == pytest.approx(start, abs=SPAN_TOL)
