"""Note transcription with Spotify's Basic Pitch model (ONNX, run by ONNX Runtime), numpy only around it.

This reimplements the small pre- and post-processing of the ``basic-pitch`` package (0.4.0,
``basic_pitch/inference.py`` and ``basic_pitch/note_creation.py``, Apache-2.0) so that its
TensorFlow/librosa/pretty_midi code paths are never imported: only the packaged ``nmp.onnx``
file is read. Constants are Basic Pitch's own:

* audio at 22 050 Hz, mono; windows of 43 844 samples (2 s less one hop) overlapping by 30
  frames of 256 samples, the first window preceded by 15 frames of zeros;
* outputs per window: ``note`` and ``onset`` posteriorgrams (172 frames x 88 piano keys,
  86.13 frames per second) and ``contour`` (x 264, 3 bins per semitone from A0; read only for each
  note's pitch glide, ``note_glide``, as Basic Pitch's own pitch bends); the 15 overlapping frames at
  each window edge are dropped before the windows are concatenated;
* note creation as ``output_to_notes_polyphonic``: onsets inferred from frame-activation jumps
  added to the predicted ones, peaks over time of the onset map above ``onset_thresh`` start a
  note, which lasts while the frame activation stays above ``frame_thresh`` (up to
  ``energy_tol`` frames below it are bridged), and notes of ``min_note_len`` frames or fewer are
  dropped. Basic Pitch's "melodia trick" (notes without an onset grown from the strongest
  remaining activation) is not used: it costs one full-matrix argmax per note, and the melody
  signature reads onsets anyway.

Times use Basic Pitch's frame-to-time correction (``model_frames_to_time``), so onset times agree
with what ``basic-pitch`` itself writes to MIDI to within a frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SR = 22050
FFT_HOP = 256
AUDIO_N_SAMPLES = SR * 2 - FFT_HOP  # 43844
N_OVERLAP_FRAMES = 30
OVERLAP_LEN = N_OVERLAP_FRAMES * FFT_HOP
HOP_SIZE = AUDIO_N_SAMPLES - OVERLAP_LEN
ANNOTATIONS_FPS = SR // FFT_HOP  # 86
ANNOT_N_FRAMES = ANNOTATIONS_FPS * 2  # 172
MIDI_OFFSET = 21
N_KEYS = 88
WINDOW_BATCH = 8  # windows per ONNX call (about 2 s each): bounds activation memory to ~100 MB
INPUT_NAME = "serving_default_input_2:0"
OUTPUTS = ("StatefulPartitionedCall:1", "StatefulPartitionedCall:2", "StatefulPartitionedCall:0")  # note, onset, contour
CONTOUR_BINS_PER_SEMITONE = 3
N_CONTOUR_BINS = 264
BEND_TOLERANCE = 25  # contour bins either side of a note's own bin, as Basic Pitch's ``get_pitch_bends``


@dataclass(frozen=True)
class NoteParams:
    """Basic Pitch's note-creation settings (its ``predict`` defaults)."""

    onset_thresh: float = 0.5
    frame_thresh: float = 0.3
    min_note_ms: float = 127.70
    energy_tol: int = 11
    infer_onsets: bool = True

    @property
    def min_note_len(self) -> int:
        return int(np.round(self.min_note_ms / 1000 * (SR / FFT_HOP)))


def open_session(path, device: str = "cpu"):
    """An ONNX Runtime session for ``nmp.onnx`` with one intra-op thread per available core."""
    import onnxruntime as ort

    from scanner.detectors.onnx_session import session_options
    from scanner.detectors.sscd import _providers

    return ort.InferenceSession(str(path), sess_options=session_options(), providers=_providers(device))


def posteriorgrams(session, audio: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(note, onset, contour) activations, (frames, 88), (frames, 88) and (frames, 264), for mono float32
    ``audio`` at 22 050 Hz."""
    n_orig = audio.shape[0]
    x = np.concatenate([np.zeros(OVERLAP_LEN // 2, np.float32), audio.astype(np.float32, copy=False)])
    starts = list(range(0, x.shape[0], HOP_SIZE))
    notes, onsets, contours = [], [], []
    for b in range(0, len(starts), WINDOW_BATCH):
        batch = np.zeros((len(starts[b:b + WINDOW_BATCH]), AUDIO_N_SAMPLES, 1), np.float32)
        for k, s in enumerate(starts[b:b + WINDOW_BATCH]):
            w = x[s:s + AUDIO_N_SAMPLES]
            batch[k, :w.shape[0], 0] = w
        note, onset, contour = session.run(list(OUTPUTS), {INPUT_NAME: batch})
        half = N_OVERLAP_FRAMES // 2
        notes.append(note[:, half:-half].reshape(-1, N_KEYS))
        onsets.append(onset[:, half:-half].reshape(-1, N_KEYS))
        contours.append(contour[:, half:-half].reshape(-1, N_CONTOUR_BINS))
    n_frames = int(np.floor(n_orig * (ANNOTATIONS_FPS / SR)))
    if not notes:
        return (np.zeros((0, N_KEYS), np.float32), np.zeros((0, N_KEYS), np.float32),
                np.zeros((0, N_CONTOUR_BINS), np.float32))
    return np.concatenate(notes)[:n_frames], np.concatenate(onsets)[:n_frames], np.concatenate(contours)[:n_frames]


def frames_to_time(frames: np.ndarray) -> np.ndarray:
    """Basic Pitch's ``model_frames_to_time``: frame index to seconds, with its per-window correction."""
    frames = np.asarray(frames, np.float64)
    window_offset = (FFT_HOP / SR) * (ANNOT_N_FRAMES - (AUDIO_N_SAMPLES / FFT_HOP)) + 0.0018
    return frames * FFT_HOP / SR - window_offset * np.floor(frames / ANNOT_N_FRAMES)


def _inferred_onsets(onsets: np.ndarray, frames: np.ndarray, n_diff: int = 2) -> np.ndarray:
    diffs = []
    for n in range(1, n_diff + 1):
        appended = np.concatenate([np.zeros((n, frames.shape[1]), frames.dtype), frames])
        diffs.append(appended[n:, :] - appended[:-n, :])
    frame_diff = np.min(diffs, axis=0)
    frame_diff[frame_diff < 0] = 0
    frame_diff[:n_diff, :] = 0
    top = float(np.max(frame_diff)) if frame_diff.size else 0.0
    if top > 0:
        frame_diff = float(np.max(onsets)) * frame_diff / top
    return np.maximum(onsets, frame_diff)


def notes_from_posteriorgrams(frames: np.ndarray, onsets: np.ndarray, p: NoteParams = NoteParams()) -> np.ndarray:
    """Note events (start_s, end_s, midi_pitch, amplitude) as an (n, 4) float64 array sorted by start.

    Basic Pitch's ``output_to_notes_polyphonic`` without the melodia trick (see the module docstring)."""
    n_frames = frames.shape[0]
    if n_frames < 3:
        return np.zeros((0, 4))
    if p.infer_onsets:
        onsets = _inferred_onsets(onsets, frames)
    # local maxima over time (scipy.signal.argrelmax along axis 0: strictly greater than both neighbours)
    peak = np.zeros(onsets.shape, bool)
    peak[1:-1] = (onsets[1:-1] > onsets[:-2]) & (onsets[1:-1] > onsets[2:])
    t_idx, f_idx = np.nonzero(peak & (onsets >= p.onset_thresh))
    order = np.lexsort((f_idx, t_idx))[::-1]  # backwards in time, as Basic Pitch does
    remaining = frames.copy()
    events = []
    for start, key in zip(t_idx[order], f_idx[order]):
        if start >= n_frames - 1:
            continue
        i, k = start + 1, 0
        col = remaining[:, key]
        while i < n_frames - 1 and k < p.energy_tol:
            k = k + 1 if col[i] < p.frame_thresh else 0
            i += 1
        i -= k
        if i - start <= p.min_note_len:
            continue
        remaining[start:i, max(0, key - 1):key + 2] = 0
        events.append((start, i, key + MIDI_OFFSET, float(np.mean(frames[start:i, key]))))
    if not events:
        return np.zeros((0, 4))
    ev = np.asarray(events, np.float64)
    out = np.stack([frames_to_time(ev[:, 0]), frames_to_time(ev[:, 1]), ev[:, 2], ev[:, 3]], axis=1)
    return out[np.lexsort((out[:, 2], out[:, 0]))]


def note_glide(notes: np.ndarray, contour: np.ndarray) -> np.ndarray:
    """Per note, how much its pitch glides: the mean frame-to-frame change of its pitch bend, in contour bins
    (1/3 semitone).

    The bend of a frame is Basic Pitch's (``get_pitch_bends``): the argmax of the contour within
    ``BEND_TOLERANCE`` bins of the note's own bin, weighted by a Gaussian of 5 bins. A played or sung
    note holds its pitch (0 for nearly all frames); speech transcribed as notes slides between them."""
    out = np.zeros(notes.shape[0])
    if notes.shape[0] == 0 or contour.shape[0] == 0:
        return out
    times = frames_to_time(np.arange(contour.shape[0] + 1))  # increasing: the correction is under a frame
    tol = BEND_TOLERANCE
    g = np.exp(-0.5 * (np.arange(-tol, tol + 1) / 5.0) ** 2)
    starts, ends = _nearest_frame(times, notes[:, 0]), _nearest_frame(times, notes[:, 1])
    for i, (fa, fb, pitch) in enumerate(zip(starts.tolist(), ends.tolist(), notes[:, 2])):
        fb = max(fa + 1, fb)
        idx = CONTOUR_BINS_PER_SEMITONE * (int(pitch) - MIDI_OFFSET)
        lo, hi = max(0, idx - tol), min(N_CONTOUR_BINS, idx + tol + 1)
        sub = contour[fa:fb, lo:hi]
        if sub.shape[0] < 2 or sub.shape[1] == 0:
            continue
        bend = np.argmax(sub * g[lo - (idx - tol):hi - (idx - tol)], axis=1).astype(np.float64)
        out[i] = float(np.abs(np.diff(bend)).mean())
    return out


def _nearest_frame(times: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Index of the frame time closest to each of ``t`` (the earlier one on a tie), ``times`` increasing."""
    i = np.clip(np.searchsorted(times, t), 1, max(1, len(times) - 1))
    return np.where(np.abs(times[i - 1] - t) <= np.abs(times[np.minimum(i, len(times) - 1)] - t), i - 1, i)
