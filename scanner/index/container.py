"""One byte container for every index family.

Layout (all integers little-endian)::

    MAGIC (8 bytes, b"SCNIDX02")
    header length (u32)
    JSON header, UTF-8, keys sorted:
        {"family": ..., "version": ..., "sections": [{"name", "offset", "length"}, ...], ...}
    section bytes, back to back, offsets counted from the first byte after the header

``family`` names the index family ("faiss", "landmark", "local", ...) and ``version`` that
family's own layout version; anything else in the header is the family's metadata. The
reader checks every offset and length and that nothing trails the last section, so a
truncated or padded file is refused before any section is parsed. Every failure to read is
one ``IndexCorruptError``; files written by older versions (``SCNIDX01``, ``SCANLOC1``, npz
archives, bare FAISS bytes) raise ``IndexMismatchError`` asking for a rebuild. No pickle.

Anchor: faiss contrib's ``ondisk``/``inspect_tools`` keep FAISS bytes as one opaque blob next
to their own metadata; here every family writes the same frame around its blobs.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any, Callable, Mapping, TypeVar

import numpy as np

from scanner.errors import IndexCorruptError, IndexMismatchError

MAGIC = b"SCNIDX02"
SUFFIX = "scn"  # data files are named index-<checksum>.<family>.scn
REBUILD = "rebuild it with `scanner index build --rebuild`"
_HEAD = struct.Struct("<I")
_MAX_HEADER = 1 << 24  # a header is a few hundred bytes; a huge length means garbage
# Leading bytes of the formats this container replaced (all refused: rebuild).
_LEGACY = {
    b"SCNIDX01": "an approximate FAISS index",
    b"SCANLOC1": "a local keypoint index",
    b"PK\x03\x04": "an npz archive (a landmark index)",
    b"IxM2": "a flat FAISS index",
    b"IBM2": "a flat binary FAISS index",
}

T = TypeVar("T")


@dataclass(frozen=True)
class Container:
    """A read container: the header (family metadata included) and its sections by name."""

    family: str
    version: int
    header: dict[str, Any]
    sections: dict[str, memoryview]

    def section(self, name: str) -> memoryview:
        """The bytes of section ``name`` (``IndexCorruptError`` when it is absent)."""
        try:
            return self.sections[name]
        except KeyError:
            raise IndexCorruptError(f"{self.family} index has no {name!r} section; {REBUILD}") from None

    def array(self, name: str, dtype: Any, shape: tuple[int, ...] | None = None) -> np.ndarray:
        """Section ``name`` as a fresh (writable) array of ``dtype``, optionally reshaped."""
        buf = self.section(name)
        dt = np.dtype(dtype)
        if len(buf) % dt.itemsize:
            raise IndexCorruptError(f"{self.family} index section {name!r} is not whole {dt} values; {REBUILD}")
        arr = np.frombuffer(buf, dtype=dt).copy()
        if shape is not None:
            try:
                arr = arr.reshape(shape)
            except ValueError:
                raise IndexCorruptError(f"{self.family} index section {name!r} has {arr.size} values, "
                                        f"not shape {shape}; {REBUILD}") from None
        return arr

    def get(self, key: str) -> Any:
        """Header field ``key`` (``IndexCorruptError`` when it is absent)."""
        try:
            return self.header[key]
        except KeyError:
            raise IndexCorruptError(f"{self.family} index header has no {key!r}; {REBUILD}") from None


def pack(family: str, version: int, meta: Mapping[str, Any], sections: Mapping[str, bytes]) -> bytes:
    """The container bytes for ``sections`` (in order) with ``meta`` in the header; deterministic."""
    reserved = {"family", "version", "sections"} & set(meta)
    if reserved:
        raise ValueError(f"header keys {sorted(reserved)} are the container's own")
    table, offset = [], 0
    for name, data in sections.items():
        table.append({"name": name, "offset": offset, "length": len(data)})
        offset += len(data)
    head = json.dumps({**meta, "family": family, "version": int(version), "sections": table},
                      sort_keys=True, separators=(",", ":")).encode()
    return b"".join([MAGIC, _HEAD.pack(len(head)), head, *(bytes(d) for d in sections.values())])


def unpack(data: bytes | memoryview, family: str | None = None, version: int | None = None) -> Container:
    """Read container bytes; refuse another ``family`` or ``version`` (when given) with ``IndexMismatchError``,
    anything unreadable with ``IndexCorruptError``."""
    view = memoryview(data).cast("B")
    what = f"{family} index" if family else "index"
    if bytes(view[:8]) != MAGIC:
        for lead, name in _LEGACY.items():
            if bytes(view[:len(lead)]) == lead:
                raise IndexMismatchError(f"the {what} file is {name} in an older format; {REBUILD}")
        raise IndexCorruptError(f"not a scanner index (bad magic); {REBUILD}")
    try:
        if len(view) < 8 + _HEAD.size:
            raise ValueError("no header length")
        (n,) = _HEAD.unpack_from(view, 8)
        start = 8 + _HEAD.size + n
        if n > _MAX_HEADER or start > len(view):
            raise ValueError(f"header of {n} bytes in {len(view)}")
        header = json.loads(bytes(view[8 + _HEAD.size:start]))
        if not isinstance(header, dict):
            raise ValueError("header is not an object")
        got_family, got_version, table = str(header["family"]), int(header["version"]), header["sections"]
        sections: dict[str, memoryview] = {}
        pos = 0
        for entry in table:
            name, offset, length = str(entry["name"]), int(entry["offset"]), int(entry["length"])
            if offset != pos or length < 0 or name in sections:
                raise ValueError(f"section {name!r} out of place")
            sections[name] = view[start + offset:start + offset + length]
            pos += length
        if start + pos != len(view):
            raise ValueError(f"{len(view) - start} data bytes for sections of {pos}: truncated or padded")
    except (ValueError, KeyError, TypeError, struct.error, UnicodeDecodeError) as exc:
        raise IndexCorruptError(f"{what} file is unreadable ({exc}); {REBUILD}") from None
    if family is not None and got_family != family:
        raise IndexMismatchError(f"the file holds a {got_family} index, not a {family} index; {REBUILD}")
    if version is not None and got_version != version:
        raise IndexMismatchError(f"{what} format {got_version} is not the one this version reads "
                                 f"({version}); {REBUILD}")
    meta = {k: v for k, v in header.items() if k not in ("family", "version", "sections")}
    return Container(got_family, got_version, meta, sections)


def family_of(data: bytes | memoryview) -> str:
    """The family a container holds (reads only the header)."""
    return unpack(data).family


def parse(what: str, read: Callable[[], T]) -> T:
    """Run ``read`` (which decodes sections) and turn any parse failure into ``IndexCorruptError``:
    FAISS, numpy and JSON raise RuntimeError/ValueError/KeyError/TypeError on bad bytes."""
    try:
        return read()
    except (IndexCorruptError, IndexMismatchError):
        raise
    except (RuntimeError, ValueError, KeyError, TypeError, IndexError, OverflowError) as exc:
        why = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise IndexCorruptError(f"{what} is unreadable ({why}); {REBUILD}") from None
