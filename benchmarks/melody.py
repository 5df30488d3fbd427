"""Melody benchmark: registered compositions found in covers that share no recording with them.

    .venv/bin/python -m benchmarks.melody [--music DIR] [--seed N | --pool-seeds 17,18] [--quick] [--cache DIR]
        [--write-calibration [PATH]] [--keep-posteriorgrams] [--set NAME=VALUE ...]

``--set`` runs the detector under test with other ``MelodyParams`` (e.g. ``--set onset_thresh=0.4``: note
creation, on references and covers alike) while the covers stay the same audio (synthesised from the shipped
params' transcription); with ``--keep-posteriorgrams`` Basic Pitch's outputs are kept, so such a run costs the
note extraction and search, not the model.

Data. Every audio file in ``--music`` (default ``../shared/data/music``, 20 orchestral tracks) is a
composition. Tracks are shuffled with ``--seed``; ``HELD_OUT`` are never registered, the rest are
registered (``audio.melody`` and, as the baseline, ``audio.fingerprint`` index the original recordings).

Covers. Each track is transcribed once with the detector's own transcription (Basic Pitch, all
notes, polyphonic). A cover of an excerpt re-synthesises those notes from scratch (pure numpy
additive synthesis, ``TIMBRES``: organ, pluck, flute-like, saw-brass, each with its own harmonic
recipe, attack and decay), so it shares no sample with the recording. ``CONDITIONS`` then change
it: transposition +-1..3 semitones, tempo +-10 % (note times scaled), an added accompaniment (drum
loop plus a bass line one octave under the lowest notes, at -6 dB), and dialogue on top (the speech
fixtures of tests/fixtures/voices at equal RMS). "recording + dialogue" is the original recording
under speech, for issue 17's "music under dialogue" (the fingerprint's case as much as the melody's).
Covers of registered tracks are positives (the right work must be the top hit at or above the
threshold); covers of held-out tracks are negatives (their best score against every registered work).

Limits this benchmark cannot show: the covers come from the same transcriber's notes, so a real
cover's arrangement changes (reharmonisation, ornaments, a different melody octave or rhythm) are
only approximated by the timbre and accompaniment conditions; drums carry no melody at all.

Thresholds. Scores are counts (aligned melody notes in runs, best 30 s). With ``a = floor(FPR x
negatives)`` negatives allowed, the threshold is one above the (a+1)-th highest negative score, at
FPR 1 % (review) and 0.1 % (block). ``--write-calibration`` merges ``detectors["audio.melody"]``
into the calibration file (``benchmarks.common.calibrate``). ``--pool-seeds`` runs several seeds (splits
and covers) and takes the thresholds from all their negatives together, printing each seed's false-match
rate at them: one seed's few hundred negatives move the 1 % level by a note or two (below).

Speed: x real time of the melody embedding (transcription dominates), measured on the references.

Figures. Recall at 1 % false matches on the benchmark's negatives; "before" = the previous matching
(pitch-class alignment ending at 0.07 s, 5 hypotheses per reference, review 13 on seed 17), "after" =
a last alignment pass exact in semitones at 0.13 s and 10 hypotheses per reference (review 8, block
9, written to calibration.json from seed 17); the same cached transcriptions for all columns, the
fingerprint column from the same covers in the same run. Seed 17 (14 registered / 6 held out, 260
positives, 200 negatives) is where the change was chosen; seed 18 (other held-out tracks, 270
positives, 170 negatives, covers synthesised and transcribed anew) was held out from that choice::

                                    seed 17 (fitted)          seed 18 (held out)
    condition                      before  after  fingerp.   before  after  fingerp.
    recording                       84.6 %  84.6 % 100.0 %    81.5 %  85.2 % 100.0 %
    timbre                          61.5 %  76.9 %   0.0 %    51.9 %  70.4 %   0.0 %
    transpose +2                    80.8 %  80.8 %   0.0 %    81.5 %  85.2 %   0.0 %
    transpose -3                    76.9 %  84.6 %   0.0 %    59.3 %  81.5 %   0.0 %
    tempo +10%                      84.6 %  84.6 %  15.4 %    85.2 %  85.2 %   7.4 %
    tempo -10%                      53.8 %  73.1 %   0.0 %    40.7 %  66.7 %   0.0 %
    +1 st, -5 %, accompaniment      61.5 %  65.4 %   3.8 %    74.1 %  77.8 %   3.7 %
    -2 st, +8 %, accompaniment      65.4 %  69.2 %   0.0 %    74.1 %  81.5 %   0.0 %
    cover + dialogue 0 dB           38.5 %  69.2 %   0.0 %    22.2 %  48.1 %   0.0 %
    recording + dialogue 0 dB       34.6 %  42.3 % 100.0 %    18.5 %  33.3 % 100.0 %
    all covers                      65.4 %  75.5 %   2.4 %    61.1 %  74.5 %   1.4 %
    review threshold (own 1 %)      13      8                 15      10

The thresholds come from a few hundred negatives and move between splits: seed 17's review 8 lets
5.3 % of seed 18's negatives through (77.3 % recall there), 9: 1.8 % (75.0 %), 10: 0.6 % (74.5 %).
So the calibration is written from both seeds pooled (``--pool-seeds 17,18``: 370 negatives, 530
positives): review 9, block 12; all covers 74.1 % at 0.81 % false matches (seed 17: 73.1 % at 0.00 %,
seed 18: 75.0 % at 1.76 %).

Levers, one at a time (harness on the cached transcriptions; all covers, seed 17 / seed 18): the
semitone-exact last pass 65.4 -> 74.5 % / 61.1 -> 73.6 % (its tolerance 0.10 s: 72.6 / 71.3, 0.16 s:
74.5 / 74.5, 0.20 s: 69.7 / 71.3; 0.13 s kept, chosen on seed 17); then 10 hypotheses per reference
75.5 / 74.5 (kept). Measured no better: a time-map refit on the exact chain (74.0 on 17); references
indexed with their ghost line as a second line (76.4 / 68.5); notes outside MIDI 36..96 set aside
(76.4 / 71.8); min_votes 3 (69.2); n-grams of 3 intervals (71.2) or of 1 (74.5); min_notes 8 or no
0.07 s pass before the exact one (75.5, no change);
with the old pitch-class score, subtracting a null from the 11 wrong transpositions (66.3: the null is
about 0, the false matches come from the search's best hypothesis, not from chance pitch classes).
Glide filter (kept, ``MelodyParams.max_query_glide``): query notes whose pitch bend (Basic Pitch's contour,
argmax within +-25 bins of the note's own, Gaussian-weighted, as its pitch bends) moves more than 0.3 bins
(1/3 semitone) per frame on average are set aside, speech's sliding pitch. Pooled seeds 17,18, same cached
transcriptions, review 9 / block 12 unchanged, before -> after: all covers 74.1 -> 75.5 % at 0.81 % false
matches (seed 17 73.1 -> 75.0 %, seed 18 75.0 -> 75.9 %); cover + dialogue 52.8 -> 58.5 %, recording +
dialogue 41.5 -> 45.3 %, transpose +2 83.0 -> 86.8 %, -2 st +8 % 73.6 -> 75.5 %, every other condition
equal. 0.3 was picked among 3 tries on these same seeds (not held out). Lost: 0.2 (73.3 % at 0.27 %,
review 10; dialogue 47.2 / 37.7 %), 0.2 on references too (69.3 %); seed 17 alone: bend range <= 2 bins
(67.3 % vs 75.5 %), share of a note's frames within +-1 bin >= 0.8 (73.1 %). The lever is small because
on the piano-key grid speech mostly splits into short, fairly steady notes: of seed 17's cover + dialogue
notes, 0.3 drops 4 % of the cover's own and 18 % of the rest (2 % of clean covers' notes). silero-vad
gating was not measured: the dialogue bed is continuous speech, so dropping the notes under voice
activity drops the melody with it.
Music under dialogue (kept, ``MelodyDetector.under_speech``; the "without" column is the same run without it):
a query segment with >= 1 s of speech (Silero VAD) is transcribed again from RNNoise's residual (the music
with the voice taken out) and its lines join the query's. Pooled seeds 17,18, review 9 / block 12 unchanged,
0.81 % false matches both ways: cover + dialogue 58.5 -> 67.9 %, recording + dialogue 45.3 -> 73.6 %, -2 st +8 %
75.5 -> 77.4 %, all covers 75.5 -> 76.9 %, every other condition equal. Measured and not kept (harness on the
same cached transcriptions): the residual *instead of* the mix where speech is found (all covers 74.5 %,
recording + dialogue 71.7 %, cover + dialogue 56.6 %), and a magnitude-domain residual (|X| - |Y| with X's phase,
instead of the time-aligned difference; united with the mix: 75.9 % at review 10, recording + dialogue 52.8 %).
Measured 2026-12-02 and not kept (same cached transcriptions, seeds 17,18 pooled, baseline 76.9 % reproduced
in the same session): onset groups whose top note starts under a higher note still held 0.1 s / 0.5 s past it
set aside as accompaniment (the idea: a sustained organ cover does not re-strike the held melody note, so the
accompaniment tops those groups): all covers 56.1 % / 69.1 %, tempo -10 % (organ) 35.8 % / 43.4 % against
67.9 %; Basic Pitch's note ends run on, so real melody notes were masked too (no melody 14.6 % / 10.4 %
against 8.5 %).
Measured 2026-12-03 and not kept (transcription cache rebuilt; seeds 17,18 pooled; this session's same-run
baseline all covers 77.4 % at 0.81 % false matches, review 9; the harness re-scores the cached
transcriptions): a margin score, the top reference's score minus lambda x the second one's (lambda 0.25 / 0.5
/ 0.75 / 1: 77.4 / 77.1 / 77.1 / 76.2 %: the false matches' second scores are as low as the covers'); the
score over the query's melody notes^a (a = 0.25 / 0.5: 77.6 / 77.1 %); onset groups of 0.04 s or 0.1 s
instead of 0.06 (76.9 % at review 11 / 73.8 %); blocks kept from a sounding share of 0.3 or 0.2 instead of
0.4 (77.8 / 77.8 %: two covers more, 36 -> 32 / 30 without melody, within one seed's noise and it admits more
speech); 20 hypotheses per reference instead of 10 (77.8 % at review 10, 0.27 % false matches: the
negatives' best scores rise with the covers', for twice the alignments). Where the 96 missed covers are (same run, 424 covers): 36 give no melody, 51 rank another work
first (35 of them with no alignment at all with their own) and 9 rank their own first under the level.
The report's "covers of the excerpts found as the original recording" line: 8 of the 53 registered
excerpts are not found even as themselves (45 are), so 64 of the 424 covers cannot be found by any cover
matching; of the other 360 covers 90.6 % are found. The 80 % target counts all 424.
Measured 2026-12-04 and kept: the search's time scales read over 2 intervals as well as 3
(``melody.span_intervals``). Found by asking, for each missed cover, what the alignment scores under the true time
map and transposition (the cover's own): 12 of seed 17's 48 misses (review 9) aligned at or above the level there
(up to 44 notes) but the search never proposed that hypothesis: the key matches on the true map had span ratios of
0.1-0.6, because the line's 4th note (the one after the 3 the key reads) was an inserted note, so they fell out of
the scale range and did not vote. Same cached transcriptions (this session's rebuild; its shipped baseline
reproduces the calibration's 76.9 %), seeds 17+18 pooled, all covers at the pooled 1 % level:

    span (intervals)        all covers   false matches   review / block   seed 17 / 18
    3 (before)              76.9 %       0.81 %          9 / 12           76.9 / 76.9 %
    2                       79.7 %       0.00 %          10 / 10          78.8 / 80.6 %
    2 and 3 (kept)          80.2 %       0.27 %          10 / 11          80.3 / 80.1 %
    1                       75.9 %       0.81 %          10 / 13          75.0 / 76.9 %

Held out from that choice, seed 19 (a new split and new covers, transcribed anew; 200 covers, 210 negatives, its
own 1 % level): before 78.0 % (0.00 % false matches, review 10), 2 and 3: 82.5 % (0.48 %, review 10), 2: 82.0 %
(0.00 %). Pooled 17+18 per condition, before -> after: timbre 75.5 -> 83.0, transpose -3 83.0 -> 84.9, tempo -10 %
67.9 -> 71.7, +1 st -5 % accompaniment 71.7 -> 77.4, -2 st +8 % accompaniment 77.4 -> 81.1, cover + dialogue 67.9 ->
71.7 %, the rest equal except the original recording under dialogue, 73.6 -> 69.8 % (the review level moved from
9 to 10; on seed 19 68.0 % both ways). Calibration written from the pooled run: review 10, block 11. Where the 84
missed covers are now (424, review 10): 36 give no melody, 40 align under 10 notes even on the true time map (the
transcription's), 8 align at the level on it but the search proposes another hypothesis.
What is left: 8.5 % of covers give no melody at all, and 4 of the 26 registered excerpts of seed 17
have fewer than 12 melody notes even in the reference's own transcription (sparse passages), so ~85 %
is the ceiling of every cover condition here; the organ timbre (timbre, tempo -10 %) loses re-struck
notes in the transcription; dialogue at 0 dB is still transcribed as notes.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.common import cli
from benchmarks.common.calibrate import levels_entry, write_calibration
from benchmarks.common.data import AUDIO_SUFFIXES, REPO_ROOT, media_files
from benchmarks.common.split import hold_out
from benchmarks.common.stats import threshold_at_fpr
from scanner.config import Settings
from scanner.detectors.base import create
from scanner.media.audio import AudioClip, decode_audio
from scanner.policy.calibration import load_calibration
from scanner.testing.detector_kit import build_index
from scanner.types import Stage

VOICES = REPO_ROOT / "tests" / "fixtures" / "voices"
SR = 16_000
HELD_OUT = 6
EXCERPT_S = 20.0
POS_EXCERPTS, NEG_EXCERPTS = 2, 4
QUICK_POS, QUICK_NEG = 1, 2

TIMBRES = {  # harmonic amplitudes, attack s, decay time constant s (None: sustained), vibrato depth
    "organ": ((1.0, 0.0, 0.6, 0.0, 0.4, 0.0, 0.25), 0.02, None, 0.0),
    "pluck": ((1.0, 0.7, 0.5, 0.35, 0.25, 0.18, 0.12, 0.08), 0.003, 0.35, 0.0),
    "flute": ((1.0, 0.25, 0.08), 0.06, None, 0.004),
    "brass": tuple([tuple(1.0 / k for k in range(1, 12)), 0.04, 1.2, 0.002]),
}


@dataclass(frozen=True)
class Condition:
    name: str
    timbre: str | None  # None: the original recording
    shift: int = 0
    tempo: float = 1.0  # cover tempo / original tempo
    accompaniment: bool = False
    dialogue: bool = False


CONDITIONS = (
    Condition("recording", None),
    Condition("timbre", "organ"),
    Condition("transpose +2", "pluck", shift=2),
    Condition("transpose -3", "flute", shift=-3),
    Condition("tempo +10%", "brass", tempo=1.10),
    Condition("tempo -10%", "organ", tempo=0.90),
    Condition("+1 st, -5 %, accompaniment", "pluck", shift=1, tempo=0.95, accompaniment=True),
    Condition("-2 st, +8 %, accompaniment", "brass", shift=-2, tempo=1.08, accompaniment=True),
    Condition("cover + dialogue 0 dB", "flute", shift=3, dialogue=True),
    Condition("recording + dialogue 0 dB", None, dialogue=True),
)


def synth(notes: np.ndarray, seconds: float, timbre: str, shift: int, rng: np.random.Generator) -> np.ndarray:
    """Additive synthesis of note events (start, end, pitch, amplitude) with one of ``TIMBRES``."""
    harm, attack, decay, vib = TIMBRES[timbre]
    n = int(seconds * SR)
    out = np.zeros(n + SR, np.float64)
    for start, end, pitch, amp in notes[:, :4]:
        f0 = 440.0 * 2 ** ((pitch + shift - 69) / 12)
        a = int(start * SR)
        length = int((max(end - start, 0.08) + 0.1) * SR)
        if a >= n:
            continue
        tt = np.arange(min(length, out.shape[0] - a)) / SR
        env = np.minimum(1.0, tt / attack) * (np.exp(-tt / decay) if decay else 1.0)
        env *= np.clip((end - start + 0.1 - tt) / 0.05, 0.0, 1.0)  # release
        phase = 2 * np.pi * f0 * (tt + (vib * np.sin(2 * np.pi * 5.0 * tt) / (2 * np.pi * 5.0) if vib else 0.0))
        tone = sum(h * np.sin((k + 1) * phase) for k, h in enumerate(harm) if h and (k + 1) * f0 < SR / 2.2)
        out[a:a + tt.shape[0]] += (0.4 + 0.6 * amp) * env * tone
    out = out[:n]
    return out / (np.max(np.abs(out)) or 1.0)


def accompaniment(notes: np.ndarray, seconds: float, tempo_beat: float, shift: int, rng) -> np.ndarray:
    """A drum loop and a bass line (the lowest note of each beat, an octave down)."""
    n = int(seconds * SR)
    y = np.zeros(n + SR)
    for k, t in enumerate(np.arange(0.0, seconds, tempo_beat / 2)):
        a = int(t * SR)
        m = int(0.2 * SR)
        tt = np.arange(m) / SR
        if k % 4 == 0:
            y[a:a + m] += np.sin(2 * np.pi * (50 + 90 * np.exp(-tt / 0.03)) * tt) * np.exp(-tt / 0.09)
        elif k % 4 == 2:
            y[a:a + m] += rng.normal(0, 0.6, m) * np.exp(-tt / 0.06)
        y[a:a + m // 4] += rng.normal(0, 0.15, m // 4) * np.exp(-tt[:m // 4] / 0.01)
    bass = []
    for t in np.arange(0.0, seconds, tempo_beat):
        sel = notes[(notes[:, 0] >= t - 0.05) & (notes[:, 0] < t + tempo_beat)]
        if sel.size:
            bass.append((t, t + tempo_beat * 0.9, float(sel[:, 2].min()) - 12, 0.8))
    if bass:
        y[:n] += 0.8 * synth(np.asarray(bass), seconds, "pluck", shift, rng)
    return (y[:n] / (np.max(np.abs(y)) or 1.0))


def speech_bed(seconds: float) -> np.ndarray:
    parts = [decode_audio(p.read_bytes(), SR).samples for p in sorted(VOICES.glob("*.flac"))]
    bed = np.concatenate(parts) if parts else np.zeros(SR, np.float32)
    reps = int(np.ceil(seconds * SR / bed.shape[0]))
    return np.tile(bed, reps)[:int(seconds * SR)]


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) or 1e-9


def make_query(cond: Condition, clip: AudioClip, notes: np.ndarray, start: float, rng) -> AudioClip:
    """The cover (or dialogue-covered recording) of ``clip`` from ``start`` for ``EXCERPT_S``."""
    if cond.timbre is None:
        y = clip.samples[int(start * SR):int((start + EXCERPT_S) * SR)].astype(np.float64)
        seconds = y.shape[0] / SR
    else:
        sel = notes[(notes[:, 0] >= start) & (notes[:, 0] < start + EXCERPT_S)].copy()
        sel[:, :2] = (sel[:, :2] - start) / cond.tempo
        seconds = EXCERPT_S / cond.tempo
        y = synth(sel, seconds, cond.timbre, cond.shift, rng)
        if cond.accompaniment:
            ioi = np.diff(np.unique(np.round(sel[:, 0], 2)))
            beat = float(np.clip(np.median(ioi) * 2 if ioi.size else 0.5, 0.3, 0.8))
            acc = accompaniment(sel, seconds, beat, cond.shift, rng)
            y = y + acc * rms(y) / rms(acc) * 10 ** (-6 / 20)
    if cond.dialogue:
        sp = speech_bed(y.shape[0] / SR).astype(np.float64)
        y = y + sp * rms(y) / rms(sp)
    y = 0.5 * y / (np.max(np.abs(y)) or 1.0)
    return AudioClip(y.astype(np.float32), SR)


TRANSCRIPTION_PARAMS = ("max_transcribed_s", "segment_s", "min_seconds", "silence_dbfs", "onset_thresh",
                        "frame_thresh", "min_note_ms")


def transcribed(det, path: Path | str, clip: AudioClip, cache: Path, under_speech: bool = False
                ) -> tuple[np.ndarray, bool]:
    """(All notes of a track or query, whether they were computed now), cached by content and the
    transcription params (the melody/signature params can change without transcribing again).
    ``under_speech``: the notes of the music under its dialogue (``det.transcribe(..., under_speech=True)``;
    none when the VAD finds no speech), cached under ``path + "|resid-time"``."""
    params = {k: det.params[k] for k in TRANSCRIPTION_PARAMS}
    content = path.read_bytes() if isinstance(path, Path) else path.encode()
    if under_speech:
        content += b"|resid-time"
    # "glide": the notes carry a 5th column (each note's pitch glide); older (n, 4) files are not reused
    key = hashlib.sha256(content + json.dumps(params, sort_keys=True).encode() + b"glide").hexdigest()[:20]
    f = cache / f"{key}.npy"
    if f.is_file():
        return np.load(f), False
    notes, _ = det.transcribe(clip, under_speech=under_speech)
    notes = np.zeros((0, 5)) if notes is None else notes
    cache.mkdir(parents=True, exist_ok=True)
    np.save(f, notes)
    return notes, True


def keeping_posteriorgrams(cache: Path, real):
    """``real`` (``melody_transcribe.posteriorgrams``) with its outputs kept under ``cache/posteriorgrams`` by the
    audio's bytes (float32, as computed): Basic Pitch's model is most of a run's time and does not depend on the
    note params that ``--set`` changes, so a second run with other note params transcribes nothing anew."""
    folder = cache / "posteriorgrams"

    def run(session, audio: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        key = hashlib.sha256(np.ascontiguousarray(audio, np.float32).tobytes()).hexdigest()[:24]
        f = folder / f"{key}.npz"
        if f.is_file():
            with np.load(f) as z:
                return z["frames"], z["onsets"], z["contour"]
        frames, onsets, contour = real(session, audio)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f"{key}.{id(audio)}.tmp.npz"
        np.savez(tmp, frames=frames, onsets=onsets, contour=contour)
        tmp.replace(f)
        return frames, onsets, contour

    return run


def param_overrides(pairs: list[str]) -> dict:
    """``--set`` values (``name=value``) as MelodyParams fields, each cast to its field's type; a clear
    error for an unknown name."""
    from dataclasses import fields

    from scanner.detectors.melody import MelodyParams

    kinds = {f.name: type(f.default) for f in fields(MelodyParams)}
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or name not in kinds:
            sys.exit(f"--set {pair!r}: expected NAME=VALUE with NAME one of {', '.join(sorted(kinds))}")
        kind = kinds[name]
        out[name] = value.lower() in ("1", "true", "yes") if kind is bool else kind(value)
    return out


def best(hits, right: int | None) -> tuple[float, bool]:
    """(score of the right work or the best score, whether the right work is the top hit)."""
    if not hits:
        return 0.0, False
    top = max(hits, key=lambda h: h.score)
    if right is None:
        return float(top.score), False
    mine = [h.score for h in hits if h.ref_id == right]
    return (float(mine[0]) if mine else 0.0), top.ref_id == right


def collect(args, seed: int, files: list[Path], mel, fp, shipped=None) -> tuple[list[tuple], dict]:
    """Every (condition, positive, melody score, melody top ok, fp score, fp top ok, empty) row of one
    seed's split and covers, and what the report says about that run.

    ``shipped``: a detector with the shipped params whose transcription of each track the covers are
    synthesised from (``--set`` changes the detector under test, not the covers); ``mel`` when None."""
    held_i, registered_i = hold_out(len(files), HELD_OUT, seed)
    held = [files[i] for i in held_i]
    registered = [files[i] for i in registered_i]
    clips, notes, cover_notes = {}, {}, {}
    t_embed, audio_s = 0.0, 0.0
    for path in files:
        clips[path] = decode_audio(path.read_bytes(), SR)
        t0 = time.perf_counter()
        notes[path], fresh = transcribed(mel, path, clips[path], args.cache)
        if fresh:
            t_embed += time.perf_counter() - t0
            audio_s += clips[path].duration
        cover_notes[path] = notes[path] if shipped is None else transcribed(shipped, path, clips[path], args.cache)[0]
    print(f"seed {seed}: {len(registered)} registered, {len(held)} held out; {audio_s:.0f} s of audio transcribed now")
    ref_ids = {p: i + 1 for i, p in enumerate(registered)}
    mel_refs = {ref_ids[p]: mel.embed_notes(notes[p]) for p in registered}
    empty_refs = [p.name for p in registered if mel_refs[ref_ids[p]].empty]
    mel_index = build_index(mel, mel_refs)
    fp_index = build_index(fp, {ref_ids[p]: e for p, e in zip(registered, fp.embed_references(
        [clips[p] for p in registered]))})
    n_pos, n_neg = (QUICK_POS, QUICK_NEG) if args.quick else (POS_EXCERPTS, NEG_EXCERPTS)

    # (condition, positive, melody score, melody top ok, fp score, fp top ok, empty, the same two without the
    # lines under dialogue, whether the music under dialogue was read, the excerpt: seed|track|start)
    rows = []
    t_query, q_audio = 0.0, 0.0
    for path in files:
        clip = clips[path]
        right = ref_ids.get(path)
        k = n_pos if right else n_neg
        if clip.duration < EXCERPT_S + 2:
            starts = [0.0] if clip.duration >= 8 else []
        else:
            starts = list(np.linspace(0.1, 0.9, k) * (clip.duration - EXCERPT_S)) if k > 1 else \
                [0.4 * (clip.duration - EXCERPT_S)]
        for start in starts:
            for cond in CONDITIONS:
                tag = f"{path.name}|{start:.2f}|{cond}|{seed}"
                qrng = np.random.default_rng(int(hashlib.sha256(tag.encode()).hexdigest()[:8], 16))
                q = make_query(cond, clip, cover_notes[path], float(start), qrng)
                t0 = time.perf_counter()
                qnotes, fresh = transcribed(mel, tag, q, args.cache)
                under, fresh_u = transcribed(mel, tag, q, args.cache, under_speech=True)
                me0 = mel.embed_notes(qnotes, query=True)  # same-run baseline: without the lines under dialogue
                me = mel.embed_query_notes(qnotes, under)  # as embed_queries
                if fresh and fresh_u:  # timed only when the whole query was computed now
                    t_query += time.perf_counter() - t0
                    q_audio += q.duration
                ms, mok = best(mel.search(mel_index, [me])[0], right)
                ms0, mok0 = best(mel.search(mel_index, [me0])[0], right)
                fkey = args.cache / f"fp-{hashlib.sha256((tag + fp.model_id).encode()).hexdigest()[:20]}.json"
                if fkey.is_file():
                    fs, fok = json.loads(fkey.read_text())
                else:
                    (fe,) = fp.embed_queries([q])
                    fs, fok = best(fp.search(fp_index, [fe])[0], right)
                    fkey.write_text(json.dumps([fs, bool(fok)]))
                rows.append((cond.name, right is not None, ms, mok, fs, fok, me.empty, ms0, mok0, under.shape[0] > 0,
                             f"{seed}|{path.name}|{start:.2f}"))
        print(f"  {path.name}: {len(starts)} excerpts x {len(CONDITIONS)} conditions", flush=True)
    info = {"registered": len(registered), "held": len(held), "empty_refs": empty_refs, "t_embed": t_embed,
            "audio_s": audio_s, "t_query": t_query, "q_audio": q_audio}
    return rows, info


def within_found_recordings(cond: np.ndarray, excerpt: np.ndarray, found: np.ndarray, pos: np.ndarray
                            ) -> tuple[float, int, int]:
    """(share of covers found among the registered excerpts whose "recording" query is found, number of
    such excerpts, number of registered excerpts): what the melody matching finds where the transcription
    sees a melody at all, since a cover of an excerpt that is not found as itself cannot be either."""
    is_cover = pos & ~np.char.startswith(cond.astype(str), "recording")
    excerpts = set(excerpt[pos].tolist())
    reachable = set(excerpt[pos & (cond == "recording") & found].tolist())
    sel = is_cover & np.isin(excerpt, list(reachable))
    return (float(found[sel].mean()) if sel.any() else 0.0), len(reachable), len(excerpts)


def main() -> None:
    ap = cli.parser(__doc__)
    cli.add_data(ap, "--music", sub="music", help="folder of recordings (compositions)")
    cli.add_seed(ap, 17)
    cli.add_quick(ap, f"{QUICK_POS}/{QUICK_NEG} excerpts per track")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/scanner-melody-bench"))
    ap.add_argument("--pool-seeds", default="", metavar="LIST",
                    help="comma-separated seeds (splits and covers) whose rows are pooled: thresholds from every "
                         "seed's negatives together, each seed's false-match rate at them printed (default: --seed)")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="a MelodyParams value for the detector under test (repeatable); the covers are still "
                         "synthesised from the shipped params' transcription, so they are the same audio")
    ap.add_argument("--keep-posteriorgrams", action="store_true",
                    help="keep Basic Pitch's outputs under --cache (a few GB for both seeds) so that runs with other "
                         "note params (--set onset_thresh=...) do not run the model again")
    cli.add_write_calibration(ap)
    args = ap.parse_args()
    overrides = param_overrides(args.set)
    if overrides and args.write_calibration:
        sys.exit("--set and --write-calibration together would calibrate params the detector does not ship with")
    files = media_files(args.music, AUDIO_SUFFIXES) if args.music.is_dir() else []
    if len(files) < HELD_OUT + 2:
        sys.exit(f"need at least {HELD_OUT + 2} tracks in {args.music}")
    seeds = [int(x) for x in args.pool_seeds.split(",") if x.strip()] or [args.seed]
    settings = Settings()
    if args.keep_posteriorgrams:
        import scanner.detectors.melody as melody_module

        melody_module.posteriorgrams = keeping_posteriorgrams(args.cache, melody_module.posteriorgrams)
    shipped = create("audio.melody", settings)
    mel = shipped
    if overrides:
        from dataclasses import replace

        from scanner.detectors.melody import MelodyDetector

        mel = MelodyDetector(settings, replace(shipped.p, **overrides))
        print(f"detector under test: {', '.join(f'{k}={v!r}' for k, v in overrides.items())} "
              "(covers from the shipped params' notes)")
    fp = create("audio.fingerprint", settings)
    cal = load_calibration(settings.calibration)
    fp_review = cal.thresholds("audio.fingerprint", fp.model_id, Stage.FINAL).review
    rows, seed_of, infos = [], [], []
    for seed in seeds:
        r, info = collect(args, seed, files, mel, fp, shipped if overrides else None)
        rows += r
        seed_of += [seed] * len(r)
        infos.append(info)
    seed_arr = np.asarray(seed_of)
    registered, held = infos[0]["registered"], infos[0]["held"]
    empty_refs = sorted({n for i in infos for n in i["empty_refs"]})
    t_embed, audio_s = sum(i["t_embed"] for i in infos), sum(i["audio_s"] for i in infos)
    t_query, q_audio = sum(i["t_query"] for i in infos), sum(i["q_audio"] for i in infos)

    cond_names = [c.name for c in CONDITIONS]
    arr = {k: np.asarray([r[i] for r in rows]) for i, k in enumerate(
        ("cond", "pos", "ms", "mok", "fs", "fok", "empty", "ms0", "mok0", "under", "excerpt"))}
    neg_m, neg_f = arr["ms"][~arr["pos"]], arr["fs"][~arr["pos"]]
    review = threshold_at_fpr(neg_m, 0.01, floor=1.0)
    block = threshold_at_fpr(neg_m, 0.001, floor=1.0)
    neg_0 = arr["ms0"][~arr["pos"]]
    review0 = threshold_at_fpr(neg_0, 0.01, floor=1.0)
    fp_thr = threshold_at_fpr(neg_f, 0.01, floor=fp_review)
    print(f"\nnegatives {neg_m.size}, positives {int(arr['pos'].sum())}; melody review >= {review:g} "
          f"(1 % FPR), block >= {block:g} (0.1 %); fingerprint at its calibrated review {fp_review:g} "
          f"(>= {fp_thr:g} for 1 % FPR here)")
    print(f"without the lines under dialogue (same run): review >= {review0:g}, false matches "
          f"{float(np.mean(neg_0 >= review0)):.2%}")
    print(f"{'condition':32s} {'n':>4s} {'melody':>8s} {'without':>8s} {'fingerprint':>12s} {'no melody':>10s} "
          f"{'read under speech':>18s}")
    by_cond = {}
    for c in cond_names + ["all covers"]:
        sel = arr["pos"] & ((arr["cond"] == c) if c != "all covers" else ~np.char.startswith(
            arr["cond"].astype(str), "recording"))
        rec_m = float(np.mean(arr["mok"][sel] & (arr["ms"][sel] >= review))) if sel.any() else 0.0
        rec_f = float(np.mean(arr["fok"][sel] & (arr["fs"][sel] >= fp_thr))) if sel.any() else 0.0
        rec_0 = float(np.mean(arr["mok0"][sel] & (arr["ms0"][sel] >= review0))) if sel.any() else 0.0
        by_cond[c] = (round(rec_m, 4), round(rec_f, 4), round(rec_0, 4))
        print(f"{c:32s} {int(sel.sum()):4d} {rec_m:8.1%} {rec_0:8.1%} {rec_f:12.1%} "
              f"{float(np.mean(arr['empty'][sel])):10.1%} {float(np.mean(arr['under'][sel])):18.1%}")
    found = arr["pos"] & arr["mok"] & (arr["ms"] >= review)
    reach, seen, total = within_found_recordings(arr["cond"], arr["excerpt"], found, arr["pos"])
    print(f"covers of the excerpts found as the original recording ({seen} of {total} registered excerpts): "
          f"{reach:.1%}; the other {total - seen} are not found even as themselves (too little melody the "
          "transcription sees in them), so no cover of them can be: the limit of this benchmark")
    fpr_m = float(np.mean(neg_m >= review)) if neg_m.size else 0.0
    speed = audio_s / t_embed if t_embed > 0.5 else float("nan")
    print(f"false matches at review: {fpr_m:.2%} of {neg_m.size}; highest negative {neg_m.max() if neg_m.size else 0:g}")
    if len(seeds) > 1:  # how far one seed's negatives are from the pooled level
        for seed in seeds:
            neg_s = arr["ms"][~arr["pos"] & (seed_arr == seed)]
            pos_s = arr["pos"] & (seed_arr == seed) & ~np.char.startswith(arr["cond"].astype(str), "recording")
            own = threshold_at_fpr(neg_s, 0.01, floor=1.0)
            rec_s = float(np.mean(arr["mok"][pos_s] & (arr["ms"][pos_s] >= review))) if pos_s.any() else 0.0
            print(f"  seed {seed}: false matches at the pooled review {float(np.mean(neg_s >= review)):.2%} of "
                  f"{neg_s.size} (its own 1 % level: >= {own:g}); covers found {rec_s:.1%}")
    q_speed = f"{q_audio / t_query:.1f}x real time" if t_query > 0.5 else "not timed (every query came from the cache)"
    r_speed = f"{speed:.1f}x real time (wall, uncached)" if t_embed > 0.5 else "not timed (every track came from the cache)"
    print(f"query transcription + signature: {q_speed} (wall, {q_audio:.0f} s of covers transcribed now); "
          f"reference transcription {r_speed}")
    if empty_refs:
        print(f"references without a melody: {', '.join(empty_refs)}")
    if args.write_calibration:
        entry = levels_entry("count", block, review, {
            "excerpt_seconds": EXCERPT_S, "negatives": int(neg_m.size), "positives": int(arr["pos"].sum()),
            "recall_at_1pct_fpr_by_condition": {c: v[0] for c, v in by_cond.items()},
            "fingerprint_recall_same_queries": {c: v[1] for c, v in by_cond.items()},
            "recall_without_under_speech_lines": {c: v[2] for c, v in by_cond.items()},
            "review_without_under_speech_lines": review0,
            # None when every cover's transcription came from the cache (nothing was timed)
            "query_x_realtime_wall": round(q_audio / t_query, 1) if t_query > 0.5 else None,
            "score": "aligned melody notes (one transposition, in semitones) in runs of >= 2, best 30 s",
        })
        source = (f"benchmarks/melody.py on {args.music.name} ({registered} registered, {held} held out, "
                  f"{int(arr['pos'].sum())} positives, {neg_m.size} negatives, "
                  f"seed{'s' if len(seeds) > 1 else ''} {','.join(map(str, seeds))})")
        write_calibration(args.write_calibration, "audio.melody", mel.model_id, entry, "melody", source)


if __name__ == "__main__":
    main()
