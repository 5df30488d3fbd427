"""audio.melody under dialogue: a query with speech is also transcribed from RNNoise's residual (the music
with the voice taken out), as a second set of melody lines. Real models (Basic Pitch, Silero VAD, RNNoise);
the figures the lines were chosen on come from benchmarks/melody.py on ../shared/data/music.
"""

from __future__ import annotations

import numpy as np
import pytest

from scanner.media.audio import AudioClip
from scanner.testing.detector_kit import build_index
from scanner.testing.examples import SR, melody_tune, render_tune
from tests.test_melody import det, speech  # noqa: F401 (det: the module's fixture)

pytest.importorskip("onnxruntime")
pytest.importorskip("torch")


@pytest.fixture(scope="module")
def without(det):
    d = type(det).__new__(type(det))
    d.__dict__.update(det.__dict__)
    d.under_speech = False
    return d


@pytest.fixture(scope="module")
def tunes(det):
    refs = {1: render_tune(melody_tune(31)), 2: render_tune(melody_tune(32)), 3: render_tune(melody_tune(34))}
    return build_index(det, dict(zip(refs, det.embed_references([AudioClip(x, SR) for x in refs.values()]))))


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def _under_dialogue(music: np.ndarray, db: float = 0.0) -> np.ndarray:
    talk = np.resize(speech(), music.size)
    y = music + talk * _rms(music) / _rms(talk) * 10 ** (db / 20)
    return (0.5 * y / np.abs(y).max()).astype(np.float32)


def _top(det, index, x):
    (q,) = det.embed_queries([AudioClip(x, SR)])
    hits = det.search(index, [q])[0]
    return q, (max(hits, key=lambda h: h.score) if hits else None)


def test_residual_is_the_music_under_the_voice(det):
    music = render_tune(melody_tune(31))[: 8 * SR].astype(np.float32)
    talk = np.resize(speech(), music.size).astype(np.float32)
    talk *= _rms(music) / _rms(talk)  # dialogue at equal loudness
    res = det._denoiser.residual(music + talk)
    assert res.shape == music.shape and np.isfinite(res).all()
    kept_music = float(np.dot(res, music) / np.dot(music, music))
    kept_voice = float(np.dot(res, talk) / np.dot(talk, talk))
    assert kept_music > 0.8 and kept_voice < 0.6, (kept_music, kept_voice)  # measured 0.89 and 0.50


def test_a_tune_under_dialogue_is_found_through_the_lines_under_speech(det, without, tunes):
    # a soft-timbred cover 5 % faster, the dialogue 10 dB louder than the music: measured 21 aligned notes with
    # the lines under speech, no hit at all without (at 6 dB the search's two time-scale spans, span_intervals,
    # find 14 without them: above the review level, so that no longer shows what the lines add)
    cover = render_tune(melody_tune(31), beat_s=0.3 / 1.05)
    x = _under_dialogue(cover, db=10.0)
    q, hit = _top(det, tunes, x)
    q0, hit0 = _top(without, tunes, x)
    assert int(q.extra["line"].max()) > int(q0.extra["line"].max())  # more lines: the music under the speech
    assert hit is not None and hit.ref_id == 1, hit
    assert hit.score >= (hit0.score if hit0 and hit0.ref_id == 1 else 0) + 10, (hit.score, hit0)
    assert hit.score >= 12 and hit.extra["transposition"] == 0  # at the shipped block level
    assert hit.extra.get("under_speech") is True  # found on a line of the music under the dialogue: said
    assert q.extra["under_speech"].any() and not q.extra["under_speech"][q.extra["line"] == 0].any()


def test_no_speech_no_extra_lines_and_the_same_hits(det, without, tunes):
    x = render_tune(melody_tune(31), shift=-1, bright=True)
    notes, note = det.transcribe(AudioClip(x, SR), under_speech=True)
    assert notes is None and "no speech" in note
    (q,), (q0,) = det.embed_queries([AudioClip(x, SR)]), without.embed_queries([AudioClip(x, SR)])
    assert np.array_equal(q.vectors, q0.vectors) and np.array_equal(q.extra["line"], q0.extra["line"])
    assert "under_speech" not in q.extra and all("under_speech" not in h.extra for h in det.search(tunes, [q])[0])
    assert [(h.ref_id, h.score) for h in det.search(tunes, [q])[0]] == \
        [(h.ref_id, h.score) for h in without.search(tunes, [q0])[0]]


def test_speech_alone_still_has_no_melody_to_match(det, tunes):
    q, hit = _top(det, tunes, speech().astype(np.float32))
    assert hit is None or hit.score < 9, (hit.score, q.note)  # below the shipped review level


def test_lines_merge_with_their_own_numbers(det):
    tune = det.transcribe(AudioClip(render_tune(melody_tune(31)), SR))[0]
    plain = det.embed_notes(tune, query=True)
    both = det.embed_query_notes(tune, tune)
    n = plain.vectors.shape[0]
    assert both.vectors.shape[0] == 2 * n and np.array_equal(both.vectors[n:], plain.vectors)
    shift = int(plain.extra["line"].max()) + 1
    assert np.array_equal(both.extra["line"][n:], plain.extra["line"] + shift)
    assert all(v.shape[0] == 2 * n for v in both.extra.values())
    assert both.extra["under_speech"].tolist() == [False] * n + [True] * n
    only = det.embed_query_notes(np.zeros((0, 5)), tune)
    assert not only.empty and "under the dialogue only" in only.note and only.extra["under_speech"].all()
    assert det.embed_query_notes(tune, None).vectors.shape[0] == n


def test_long_clip_under_speech_reads_only_the_bounded_segments(det, monkeypatch):
    from scanner.detectors import melody

    calls = []
    real = melody.posteriorgrams
    monkeypatch.setattr(melody, "posteriorgrams", lambda s, a: calls.append(a.shape[0]) or real(s, a))
    small = type(det).__new__(type(det))
    small.__dict__.update(det.__dict__)
    small.p = melody.MelodyParams(max_transcribed_s=20.0, segment_s=10.0)
    x = _under_dialogue(np.tile(render_tune(melody_tune(31)), 5))  # ~90 s, dialogue throughout
    small.embed_queries([AudioClip(x, SR)])
    assert len(calls) == 4 and max(calls) <= 10.0 * melody.BP_SR + 1  # 2 segments, each plain and under speech


def test_benchmark_counts_covers_only_of_excerpts_found_as_themselves():
    import numpy as np

    from benchmarks.melody import within_found_recordings

    cond = np.array(["recording", "timbre", "tempo -10%", "recording", "timbre", "recording + dialogue 0 dB",
                     "timbre"])
    excerpt = np.array(["a", "a", "a", "b", "b", "b", "n"])
    pos = np.array([True, True, True, True, True, True, False])  # "n" is a negative's cover
    found = np.array([True, True, False, False, False, True, True])
    # excerpt b's recording is not found: its cover does not count; a's covers: 1 of 2
    assert within_found_recordings(cond, excerpt, found, pos) == (0.5, 1, 2)
    found[1] = False
    assert within_found_recordings(cond, excerpt, found, pos) == (0.0, 1, 2)
    assert within_found_recordings(cond, excerpt, np.zeros(7, bool), pos) == (0.0, 0, 2)


def test_benchmark_keeps_posteriorgrams_by_audio_and_runs_the_model_once_per_audio(tmp_path):
    from benchmarks.melody import keeping_posteriorgrams

    calls = []

    def real(session, audio):
        calls.append(audio.shape[0])
        k = float(audio.sum())
        return np.full((3, 88), k, np.float32), np.full((3, 88), k + 1, np.float32), np.full((3, 264), k, np.float32)

    run = keeping_posteriorgrams(tmp_path, real)
    a, b = np.ones(100, np.float32), np.full(100, 2.0, np.float32)
    first = run(None, a)
    again = run(None, a.copy())  # same bytes: read back, the model not run
    other = run(None, b)
    assert calls == [100, 100]
    assert all(np.array_equal(x, y) and x.dtype == y.dtype for x, y in zip(first, again))
    assert float(other[0][0, 0]) == 200.0 and float(first[1][0, 0]) == 101.0
    assert not list(tmp_path.rglob("*.tmp.npz"))  # written whole, then renamed


def test_benchmark_param_overrides_are_typed_and_unknown_names_are_refused():
    from benchmarks.melody import param_overrides

    assert param_overrides(["onset_thresh=0.4", "min_notes=10", "fold_octaves=false", "line=frames"]) == {
        "onset_thresh": 0.4, "min_notes": 10, "fold_octaves": False, "line": "frames"}
    with pytest.raises(SystemExit, match="onset_thresh"):
        param_overrides(["onset=0.4"])
    with pytest.raises(SystemExit):
        param_overrides(["onset_thresh"])
