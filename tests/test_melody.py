"""audio.melody: bad input gives "no melody to compare", a re-played tune is found in another key and tempo,
the evidence (spans, transposition, tempo ratio, aligned notes) is right, and the index round-trips.

Determinism, batch == single, params and the store round trip are the contract kit's (tests/test_contracts.py).
"""

from __future__ import annotations

import numpy as np
import pytest

from scanner.config import Settings
from scanner.errors import IndexCorruptError, ModelMissingError
from scanner.media.audio import AudioClip
from scanner.testing.detector_kit import build_index
from scanner.testing.examples import SR, melody_tune, render_tune

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def det():
    from scanner.detectors.base import create

    try:
        return create("audio.melody", Settings())
    except ModelMissingError as exc:
        pytest.skip(str(exc))


def clip(x: np.ndarray) -> AudioClip:
    return AudioClip(np.asarray(x, np.float32), SR)


def drums(seconds: float = 10.0) -> np.ndarray:
    rng = np.random.default_rng(0)
    y = np.zeros(int(seconds * SR))
    for k, t in enumerate(np.arange(0, seconds, 0.25)):
        a, n = int(t * SR), int(0.2 * SR)
        tt = np.arange(n) / SR
        if k % 4 == 0:
            y[a:a + n] += np.sin(2 * np.pi * (50 + 100 * np.exp(-tt / 0.03)) * tt) * np.exp(-tt / 0.08)
        elif k % 4 == 2:
            y[a:a + n] += rng.normal(0, 0.5, n) * np.exp(-tt / 0.05)
        y[a:a + n // 4] += rng.normal(0, 0.2, n // 4) * np.exp(-tt[:n // 4] / 0.01)
    return 0.5 * y / np.abs(y).max()


def speech() -> np.ndarray:
    from scanner.testing.examples import _fixture
    from scanner.media.audio import decode_audio

    try:
        parts = [decode_audio(_fixture("voices", f"speaker_{s}.flac").read_bytes(), SR).samples
                 for s in ("a_1", "a_2", "b_1")]
    except Exception as exc:  # noqa: BLE001 - a missing fixture skips, it does not fail
        pytest.skip(f"voice fixtures unavailable: {exc}")
    return np.concatenate(parts)


@pytest.mark.parametrize("kind", ["silence", "drums", "speech", "tone", "short"])
def test_no_melody_is_an_empty_embedding_with_a_note(det, kind):
    x = {
        "silence": lambda: np.zeros(5 * SR),
        "drums": drums,
        "speech": speech,
        "tone": lambda: 0.3 * np.sin(2 * np.pi * 440.0 * np.arange(8 * SR) / SR),
        "short": lambda: render_tune(melody_tune(5))[: SR],
    }[kind]()
    (e,) = det.embed_references([clip(x)])
    assert e.empty, f"{kind} gave {e.vectors.shape[0]} melody notes"
    assert "no melody to compare" in e.note
    index = build_index(det, {1: det.embed_references([clip(render_tune(melody_tune(31)))])[0]})
    assert det.search(index, [e]) == [[]]


def test_long_clip_is_transcribed_in_bounded_segments(det, monkeypatch):
    from scanner.detectors import melody

    calls = []
    real = melody.posteriorgrams

    def counting(session, audio):
        calls.append(audio.shape[0])
        return real(session, audio)

    monkeypatch.setattr(melody, "posteriorgrams", counting)
    small = type(det).__new__(type(det))
    small.__dict__.update(det.__dict__)
    small.p = melody.MelodyParams(max_transcribed_s=20.0, segment_s=10.0)
    tune = render_tune(melody_tune(31))
    long = np.tile(tune, 5)  # ~90 s
    (e,) = small.embed_references([clip(long)])
    assert len(calls) == 2 and max(calls) <= 10.0 * melody.BP_SR + 1
    assert "2 segments of 10 s" in e.note and "at most 20 s" in e.note


@pytest.fixture(scope="module")
def tunes(det):
    refs = {1: render_tune(melody_tune(31)), 2: render_tune(melody_tune(32)), 3: render_tune(melody_tune(34))}
    emb = dict(zip(refs, det.embed_references([clip(x) for x in refs.values()])))
    assert not any(e.empty for e in emb.values())
    return build_index(det, emb)


@pytest.mark.parametrize("shift,tempo", [(0, 1.0), (3, 1.1), (-2, 0.9)])
def test_replayed_tune_is_found_with_its_transposition_and_tempo(det, tunes, shift, tempo):
    # ref 1 re-played with brighter tones, transposed and at another tempo, starting 1.5 s into the asset
    cover = render_tune(melody_tune(31), beat_s=0.3 / tempo, shift=shift, bright=True)
    x = np.concatenate([np.zeros(int(1.5 * SR), np.float32), cover])
    (q,) = det.embed_queries([clip(x)])
    hits = det.search(tunes, [q])[0]
    assert hits and hits[0].ref_id == 1, [(h.ref_id, h.score) for h in hits]
    top = hits[0]
    others = [h.score for h in hits[1:]]
    assert top.score >= 15 and all(s <= top.score / 3 for s in others), (top.score, others)
    ex = top.extra
    assert ex["transposition"] == shift
    assert ex["tempo_ratio"] == pytest.approx(tempo, abs=0.03)
    # the spans map onto each other through the 1.5 s lead-in and the tempo change, and cover most of the tune
    assert ex["span"][0] == pytest.approx(1.5 + ex["ref_span"][0] / tempo, abs=0.1)
    assert ex["span"][1] == pytest.approx(1.5 + ex["ref_span"][1] / tempo, abs=0.1)
    assert ex["ref_span"][0] < 2.0 and ex["ref_span"][1] - ex["ref_span"][0] > 10.0
    assert len(ex["asset_notes"]) == len(ex["ref_notes"]) <= 48
    # aligned notes: asset pitch = reference pitch + transposition (up to transcription octave errors)
    diffs = [(a[1] - r[1] - shift) % 12 for a, r in zip(ex["asset_notes"], ex["ref_notes"])]
    assert all(d == 0 for d in diffs)


def test_unrelated_tune_scores_low(det, tunes):
    (q,) = det.embed_queries([clip(render_tune(melody_tune(77), shift=1, bright=True))])
    assert all(h.score < 10 for h in det.search(tunes, [q])[0])


def test_index_round_trip_and_corrupt_bytes(det, tunes):
    from scanner.index.melody_index import MelodyIndex

    again = det.load_index(tunes.to_bytes())
    assert np.array_equal(again.ids(), tunes.ids()) and again.to_bytes() == tunes.to_bytes()
    assert again.remove(np.array([2])) > 0 and list(again.ids()) == [1, 3]
    with pytest.raises(IndexCorruptError):
        MelodyIndex.from_bytes(b"not an index")


def test_ngram_keys_ignore_key_and_tempo():
    from scanner.detectors.melody import MelodyParams, ngram_keys

    p = MelodyParams()
    rng = np.random.default_rng(3)
    pitch = 60 + np.cumsum(rng.integers(-4, 5, 30))
    t = np.cumsum(rng.choice([0.25, 0.5, 0.75], 30))
    k = ngram_keys(t, pitch, p)
    assert np.array_equal(k, ngram_keys(t * 1.1 + 3.0, pitch + 5, p))
    span = max(p.ngram, 3)  # notes after the first that a key reads
    assert (k[:-span] >= 0).all() and (k[-span:] == -1).all()
    assert not np.array_equal(k, ngram_keys(t, pitch[::-1], p))


def test_ngram_keys_survive_an_octave_error():
    # the transcriber often reports a bright note an octave off; keys fold intervals mod 12
    from scanner.detectors.melody import MelodyParams, ngram_keys

    p = MelodyParams()
    rng = np.random.default_rng(5)
    pitch = 60 + np.cumsum(rng.integers(-4, 5, 30))
    t = np.cumsum(rng.choice([0.25, 0.5, 0.75], 30))
    wrong = pitch.copy()
    wrong[10] += 12
    assert np.array_equal(ngram_keys(t, pitch, p), ngram_keys(t, wrong, p))


def _notes(t: np.ndarray, pitch: np.ndarray, amp: float = 0.8) -> np.ndarray:
    return np.stack([t, t + 0.4, pitch, np.full(t.shape[0], amp)], axis=1).astype(np.float64)


def test_query_ghost_line_finds_a_cover_whose_harmonics_top_the_melody(det):
    # a cover whose timbre's 3rd harmonic (+19 st) is transcribed on every other note: the skyline
    # zig-zags between melody and harmonic; the query's second line (ghosts set aside) is the melody
    from dataclasses import replace

    rng = np.random.default_rng(11)
    t = np.cumsum(rng.choice([0.3, 0.45, 0.6], 60))
    pitch = 60 + np.cumsum(rng.integers(-4, 5, 60)).clip(-10, 10)
    index = build_index(det, {1: det.embed_notes(_notes(t, pitch))})
    ghosts = _notes(t[::2], pitch[::2] + 19, amp=0.5)
    cover = np.concatenate([_notes(t, pitch), ghosts])
    q = det.embed_notes(cover, query=True)
    assert set(np.unique(q.extra["line"])) == {0, 1}
    with_line = det.search(index, [q])[0]
    plain = type(det).__new__(type(det))
    plain.__dict__.update(det.__dict__)
    plain.p = replace(det.p, query_ghost_line=False)
    without = plain.search(index, [plain.embed_notes(cover, query=True)])[0]
    assert with_line and with_line[0].ref_id == 1 and with_line[0].score >= 30, with_line
    assert not without or without[0].score < with_line[0].score / 2, (without, with_line)
    # references are indexed with the skyline only
    assert set(np.unique(det.embed_notes(cover).extra["line"])) == {0}


def _random_melody(seed: int, n: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """A random walk of ``n`` notes (steps of 1-5 semitones, turned back at the range's edges)."""
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.choice([0.3, 0.45, 0.6], n))
    pitch = [66]
    for step in rng.choice([-5, -4, -3, -2, -1, 1, 2, 3, 4, 5], n - 1):
        pitch.append(pitch[-1] + (step if 56 <= pitch[-1] + step <= 78 else -step))
    return t, np.asarray(pitch)


def test_alignment_counts_pitches_in_semitones_not_pitch_classes(det):
    # chance alignments agree on pitch classes but jump octaves at random; a copy keeps its contour.
    # The same pitch classes with every note in a random octave share all (octave-folded) keys with the
    # reference, so only the semitone-exact last pass of the alignment tells them apart
    t, pitch = _random_melody(21)
    index = build_index(det, {1: det.embed_notes(_notes(t, pitch))})
    copy = det.search(index, [det.embed_notes(_notes(t * 1.05 + 2.0, pitch + 2), query=True)])[0]
    octaves = np.random.default_rng(4).choice([-12, 12], t.shape[0]) * (np.arange(t.shape[0]) % 2)
    scrambled = det.search(index, [det.embed_notes(_notes(t * 1.05 + 2.0, pitch + 2 + octaves), query=True)])[0]
    assert copy and copy[0].ref_id == 1 and copy[0].score >= 40, copy
    assert not scrambled or scrambled[0].score < copy[0].score / 4, (scrambled, copy)


def test_a_note_inserted_after_the_keyed_notes_does_not_stop_their_match_voting(det, monkeypatch):
    # a cover's line with a note on top after every 3rd melody note (a harmonic, an accompaniment note, a
    # syllable): the keyed triples still match, but the 4th note came 70 ms after their last one instead of a
    # beat later, so the 3-interval span put every match's time scale out of range and nothing voted
    from scanner.detectors import melody

    t = 1.0 + 0.45 * np.arange(60)
    _, pitch = _random_melody(25)
    index = build_index(det, {1: det.embed_notes(_notes(t, pitch))})
    extra = np.random.default_rng(5).choice([7, 8, 9, 10], 19)
    qt = np.concatenate([t, t[2::3][:-1] + 0.07])
    qp = np.concatenate([pitch, pitch[2::3][:-1] + extra])
    order = np.argsort(qt, kind="stable")
    q = det.embed_notes(_notes(qt[order] * 1.05 + 2.0, qp[order] + 2), query=True)
    hits = det.search(index, [q])[0]
    assert hits and hits[0].ref_id == 1 and hits[0].score >= 40, hits
    assert melody.span_intervals(det.p) == (2, 3)
    monkeypatch.setattr(melody, "span_intervals", lambda p: (3,))  # the span of the 4 notes only, as before
    assert not det.search(index, [q])[0]


def test_transposition_by_more_than_an_octave_is_reported_within_a_fifth(det):
    from scanner.detectors.melody import align

    t, pitch = _random_melody(22)
    fit = align(t, pitch + 14, t, pitch, 2, 1.0, 0.0)
    assert fit is not None and fit["transposition"] == 14 and fit["run"].all()
    index = build_index(det, {1: det.embed_notes(_notes(t, pitch))})
    (hit,) = det.search(index, [det.embed_notes(_notes(t, pitch + 14), query=True)])[0][:1]
    assert hit.extra["transposition"] == 2


def test_large_reference_ids_are_found(det):
    # vote cells pack the reference into an int64 with the scale, chunk and offset bins: ids are
    # renumbered densely first, so the store's ids (any int32) cannot overflow it
    t, pitch = _random_melody(23)
    big = 2_000_000_000
    index = build_index(det, {big: det.embed_notes(_notes(t, pitch)), 7: det.embed_notes(_notes(*_random_melody(24)))})
    hits = det.search(index, [det.embed_notes(_notes(t * 0.95, pitch - 3), query=True)])[0]
    assert hits and hits[0].ref_id == big and hits[0].score >= 40, hits


def _with_glide(notes: np.ndarray, glide: float) -> np.ndarray:
    return np.column_stack([notes, np.full(notes.shape[0], glide)])


def test_gliding_speech_like_query_notes_are_set_aside_and_steady_melody_kept(det):
    # speech over the music is transcribed as short notes whose pitch bend slides; set above the melody
    # they would take every other place of the skyline. Query notes gliding more than max_query_glide are
    # dropped; the steady melody (glide 0) is kept whole, and references are not filtered
    t, pitch = _random_melody(25)
    melody = _with_glide(_notes(t, pitch), 0.0)
    speech = _with_glide(np.stack([t + 0.2, t + 0.35, pitch + 15, np.full(t.shape[0], 0.9)], axis=1), 1.0)
    both = np.concatenate([melody, speech])
    clean = det.embed_notes(melody[:, :4], query=True)
    kept = det.embed_notes(melody, query=True)
    filtered = det.embed_notes(both, query=True)
    assert np.array_equal(kept.extra["pitch"], clean.extra["pitch"])
    assert np.array_equal(filtered.extra["pitch"], clean.extra["pitch"]), "gliding notes entered the melody"
    as_reference = det.embed_notes(both)
    assert (as_reference.extra["pitch"] >= pitch.min() + 15).any()  # references keep every note
    index = build_index(det, {1: det.embed_notes(_notes(t, pitch))})
    (hit,) = det.search(index, [filtered])[0][:1]
    assert hit.ref_id == 1 and hit.score >= 40, hit


def test_note_glide_is_zero_for_a_held_pitch_and_large_for_a_slide():
    from scanner.detectors.melody_transcribe import CONTOUR_BINS_PER_SEMITONE, MIDI_OFFSET, N_CONTOUR_BINS, \
        frames_to_time, note_glide

    n_frames = 120
    contour = np.zeros((n_frames, N_CONTOUR_BINS), np.float32)
    steady_bin = CONTOUR_BINS_PER_SEMITONE * (60 - MIDI_OFFSET)
    contour[10:50, steady_bin] = 0.9  # a held C4
    slide_bin = CONTOUR_BINS_PER_SEMITONE * (67 - MIDI_OFFSET)  # G4, sliding up 1/3 semitone every 2 frames
    for k, f in enumerate(range(60, 100)):
        contour[f, slide_bin - 6 + k // 2] = 0.9
    times = frames_to_time(np.array([10, 50, 60, 100]))
    notes = np.array([[times[0], times[1], 60, 0.8], [times[2], times[3], 67, 0.8]])
    steady, slide = note_glide(notes, contour)
    assert steady == 0.0
    assert slide >= 0.3, slide
    assert note_glide(np.zeros((0, 4)), contour).shape == (0,)


def test_nearest_frame_is_the_closest_frame_time_earlier_on_ties():
    from scanner.detectors.melody_transcribe import _nearest_frame, frames_to_time

    times = frames_to_time(np.arange(3000))
    t = np.r_[np.random.default_rng(0).uniform(-1.0, 40.0, 500), times[[0, 7, 2999]], (times[3] + times[4]) / 2]
    expected = [int(np.argmin(np.abs(times - x))) for x in t]
    assert _nearest_frame(times, t).tolist() == expected
