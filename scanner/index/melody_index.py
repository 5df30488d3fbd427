"""Melody index for ``audio.melody``: every melody note of every reference, with an n-gram key per note.

A row is one note of a reference's transcribed melody: reference id, onset time (ms), MIDI pitch and
the key of the interval/rhythm n-gram that starts at that note (-1 where none starts: the last notes).
Rows are kept sorted by (reference, onset), so a reference's whole melody is one slice (what
verification aligns against), and a second permutation sorted by key answers n-gram look-ups with a
binary search. Serialised as a plain ``np.savez`` archive (no pickle). 13 bytes per note::

    ref int32 (4) + key int32 (4) + onset ms int32 (4) + pitch int8 (1)

(about 3-4 melody notes per second of music: roughly 170 kB per hour of reference audio).
"""

from __future__ import annotations

import io
import zipfile
from typing import NamedTuple

import numpy as np

from scanner.errors import IndexCorruptError
from scanner.index.base import VectorIndex
from scanner.types import Metric

FORMAT = 1
_DTYPES = {"ref": np.int32, "key": np.int32, "t_ms": np.int32, "pitch": np.int8}
BYTES_PER_ROW = sum(np.dtype(d).itemsize for d in _DTYPES.values())
REF_ID_MAX = np.iinfo(np.int32).max


class KeyMatches(NamedTuple):
    """Rows whose key equals a probed key: ``query`` = position in the probe array, ``row`` = index row."""

    query: np.ndarray
    row: np.ndarray


class MelodyIndex(VectorIndex):
    """Melody notes of the references, looked up by n-gram key (see the module docstring)."""

    family = "melody"
    metric = Metric.COUNT
    kind = "melody-notes-v1"

    def __init__(self, dim: int = 1, columns: dict[str, np.ndarray] | None = None):
        self.dim = dim
        self._cols = columns if columns is not None else {k: np.zeros(0, d) for k, d in _DTYPES.items()}
        self._pending: list[dict[str, np.ndarray]] = []
        self._by_key: np.ndarray | None = None
        self._ref_starts: tuple[np.ndarray, np.ndarray] | None = None

    # ----- contract -----------------------------------------------------------
    def add(self, ids: np.ndarray, vectors: np.ndarray, extra: dict[str, np.ndarray] | None = None) -> None:
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        keys = np.asarray(vectors).reshape(ids.shape[0], -1)[:, 0] if ids.shape[0] else np.zeros(0, np.int64)
        if ids.shape[0] == 0:
            return
        extra = extra or {}
        missing = [k for k in ("t", "pitch") if k not in extra]
        if missing:
            raise ValueError(f"melody rows need extra columns {missing}")
        if ids.min() < 0 or ids.max() > REF_ID_MAX:
            raise ValueError(f"reference ids must be in 0..{REF_ID_MAX}")
        t = np.asarray(extra["t"], np.float64).reshape(-1)
        pitch = np.asarray(extra["pitch"]).reshape(-1)
        if t.shape[0] != ids.shape[0] or pitch.shape[0] != ids.shape[0]:
            raise ValueError("melody rows: ids, keys, t and pitch differ in length")
        if np.any(~np.isfinite(t)) or t.min() < 0 or t.max() > 2**31 / 1000 - 1:
            raise ValueError("melody note times must be finite, non-negative seconds")
        if pitch.min() < 0 or pitch.max() > 127:
            raise ValueError("melody note pitches must be MIDI numbers 0..127")
        self._pending.append({
            "ref": ids.astype(np.int32), "key": np.asarray(keys, np.int64).astype(np.int32),
            "t_ms": np.rint(t * 1000).astype(np.int32), "pitch": pitch.astype(np.int8)})
        self._invalidate()

    def remove(self, ids: np.ndarray) -> int:
        self._merge()
        drop = np.isin(self._cols["ref"], np.asarray(ids, np.int64).reshape(-1))
        gone = int(drop.sum())
        if gone:
            self._cols = {k: v[~drop] for k, v in self._cols.items()}
            self._invalidate()
        return gone

    def ids(self) -> np.ndarray:
        self._merge()
        return np.unique(self._cols["ref"]).astype(np.int64)

    def to_bytes(self) -> bytes:
        self._merge()
        buf = io.BytesIO()
        np.savez(buf, format=np.array([FORMAT], np.int32), **self._cols)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, dim: int = 1) -> "MelodyIndex":
        """Read ``to_bytes`` output; anything else raises ``IndexCorruptError`` (rebuild the index)."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                if int(z["format"][0]) != FORMAT:
                    raise ValueError(f"format {int(z['format'][0])}, this version reads {FORMAT}")
                cols = {k: np.ascontiguousarray(z[k]).astype(d, copy=False) for k, d in _DTYPES.items()}
            if len({v.shape[0] for v in cols.values()}) != 1:
                raise ValueError("columns of different lengths")
            order = np.lexsort((cols["t_ms"], cols["ref"]))
            if not np.array_equal(order, np.arange(order.shape[0])):
                raise ValueError("rows are not sorted by reference and time")
        except (ValueError, KeyError, OSError, EOFError, TypeError, zipfile.BadZipFile) as exc:
            raise IndexCorruptError(
                f"melody index is unreadable ({exc}); rebuild with `scanner index build --rebuild`") from None
        return cls(dim, cols)

    def merge(self, other: "VectorIndex") -> None:
        if not isinstance(other, MelodyIndex):
            raise TypeError(f"cannot merge a {type(other).__name__} into a MelodyIndex")
        other._merge()
        if other._cols["ref"].size:
            self._pending.append(dict(other._cols))
            self._invalidate()

    # ----- melody specifics ---------------------------------------------------
    @property
    def rows(self) -> int:
        """Notes held (all references)."""
        return int(self._cols["ref"].shape[0] + sum(c["ref"].shape[0] for c in self._pending))

    def lookup(self, keys: np.ndarray) -> KeyMatches:
        """Every row whose key equals one of ``keys`` (negative keys match nothing)."""
        self._merge()
        q = np.asarray(keys, np.int64).reshape(-1)
        if self._by_key is None:
            self._by_key = np.argsort(self._cols["key"], kind="stable")
        sorted_keys = self._cols["key"][self._by_key]
        lo = np.searchsorted(sorted_keys, q, "left")
        hi = np.searchsorted(sorted_keys, q, "right")
        hi = np.where(q < 0, lo, hi)
        counts = hi - lo
        if counts.sum() == 0:
            return KeyMatches(np.zeros(0, np.int64), np.zeros(0, np.int64))
        qpos = np.repeat(np.arange(q.shape[0]), counts)
        starts = np.repeat(lo - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
        rows = self._by_key[starts + np.arange(qpos.shape[0])]
        return KeyMatches(qpos, rows.astype(np.int64))

    def column(self, name: str, rows: np.ndarray | None = None) -> np.ndarray:
        """A stored column (``ref``, ``key``, ``t_ms``, ``pitch``), whole or at ``rows``."""
        self._merge()
        col = self._cols[name]
        return col if rows is None else col[rows]

    def notes(self, ref_id: int) -> tuple[np.ndarray, np.ndarray]:
        """(onset seconds, MIDI pitch) of one reference's melody, in time order."""
        self._merge()
        if self._ref_starts is None:
            refs, first = np.unique(self._cols["ref"], return_index=True)
            self._ref_starts = (refs, np.append(first, self._cols["ref"].shape[0]))
        refs, bounds = self._ref_starts
        k = int(np.searchsorted(refs, ref_id))
        if k >= refs.shape[0] or refs[k] != ref_id:
            return np.zeros(0), np.zeros(0, np.int64)
        a, b = bounds[k], bounds[k + 1]
        return self._cols["t_ms"][a:b] / 1000.0, self._cols["pitch"][a:b].astype(np.int64)

    def _invalidate(self) -> None:
        self._by_key = None
        self._ref_starts = None

    def _merge(self) -> None:
        if not self._pending:
            return
        cols = {k: np.concatenate([self._cols[k]] + [p[k] for p in self._pending]) for k in _DTYPES}
        order = np.lexsort((cols["t_ms"], cols["ref"]))
        self._cols = {k: v[order] for k, v in cols.items()}
        self._pending = []
        self._invalidate()
