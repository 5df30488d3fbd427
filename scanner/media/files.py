"""Finding assets in folders and reading them, with every failure turned into a reason."""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from scanner.errors import MediaError
from scanner.media.sniff import claimed_type, sniff

SKIP_NAMES = {".DS_Store", "Thumbs.db", "desktop.ini"}


def display_path(path: str | os.PathLike) -> str:
    """Printable, JSON-safe form of a path; undecodable bytes become ``\\xNN`` escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


@dataclass(frozen=True)
class Candidate:
    """A file found by the walk. ``problem`` is set when it cannot even be listed properly."""

    path: str
    problem: str | None = None

    @property
    def display(self) -> str:
        return display_path(self.path)


@dataclass(frozen=True)
class LoadedFile:
    """Bytes of an asset with its identity and sniffed type."""

    path: str
    data: bytes
    sha256: str
    media_type: str
    format: str


def special_file_problem(mode: int) -> str | None:
    """Why a file of this ``st_mode`` is not read as an asset (FIFOs, sockets, devices), or None
    for a regular file. Reading a FIFO blocks until a writer appears, a device may never end:
    such files are reported, never opened."""
    if stat.S_ISREG(mode):
        return None
    what = ("a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "a character device" if stat.S_ISCHR(mode) else "a block device" if stat.S_ISBLK(mode)
            else "a directory" if stat.S_ISDIR(mode) else "not a regular file")
    return f"{what}, not a regular file: not read, so not checked"


def _nonblocking(path: str, flags: int) -> int:
    """``open`` opener: O_NONBLOCK so that a file swapped for a FIFO after the type check cannot
    block the open (regular files ignore the flag); O_NOCTTY so a terminal never becomes ours."""
    return os.open(path, flags | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))


def walk(paths: Iterable[str | os.PathLike]) -> Iterator[Candidate]:
    """Files under ``paths`` (recursively, sorted, following directory links once).

    Symlink loops, unreadable directories and special files (FIFOs, sockets, devices) become
    candidates with a ``problem`` so they show up as errors instead of being silently dropped
    (or, for a FIFO, hanging the scan). The file type comes from ``stat``; nothing is opened here.
    """
    seen_dirs: set[tuple[int, int]] = set()
    for root in paths:
        root = os.fspath(root)
        try:
            st = os.stat(root)
        except OSError as exc:
            yield Candidate(root, f"cannot access: {exc.strerror or exc}")
            continue
        if not stat.S_ISDIR(st.st_mode):
            yield Candidate(root, special_file_problem(st.st_mode))
            continue
        yield from _walk_dir(root, seen_dirs)


def _walk_dir(top: str, seen: set[tuple[int, int]]) -> Iterator[Candidate]:
    try:
        st = os.stat(top)
    except OSError as exc:
        yield Candidate(top, f"cannot access directory: {exc.strerror or exc}")
        return
    key = (st.st_dev, st.st_ino)
    if key in seen:
        return  # a directory link back into a tree we already walked
    seen.add(key)
    try:
        entries = sorted(os.scandir(top), key=lambda e: os.fsencode(e.name))
    except OSError as exc:
        yield Candidate(top, f"cannot list directory: {exc.strerror or exc}")
        return
    for entry in entries:
        if entry.name in SKIP_NAMES or entry.name.startswith("._"):
            continue
        try:
            is_dir = entry.is_dir(follow_symlinks=True)
        except OSError:
            is_dir = False
        if is_dir:
            yield from _walk_dir(entry.path, seen)
            continue
        try:
            mode = entry.stat(follow_symlinks=True).st_mode
        except OSError:  # a broken link or a link loop: ``load`` reports why
            yield Candidate(entry.path)
            continue
        yield Candidate(entry.path, special_file_problem(mode))


def is_candidate_media(path: str) -> bool:
    """Whether a walked file should be treated as an asset (claims media, or sniffs as media).

    Files that neither claim nor contain media (sidecars, notes) are skipped by the scan.
    Unreadable and special files count as assets so that they become errors, not silent skips;
    a special file is never opened (its type is checked first).
    """
    if claimed_type(display_path(path)):
        return True
    try:
        if special_file_problem(os.stat(path).st_mode):
            return True
        with open(path, "rb", opener=_nonblocking) as fh:
            if special_file_problem(os.fstat(fh.fileno()).st_mode):
                return True  # swapped after the check
            return sniff(fh.read(64)) is not None
    except OSError:
        return True


def load(path: str, max_bytes: int) -> LoadedFile:
    """Read a whole asset, hash it and sniff its type; raises ``MediaError`` with a reason."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise MediaError(f"cannot access file: {exc.strerror or exc}") from None
    problem = special_file_problem(st.st_mode)
    if problem:
        raise MediaError(problem)
    try:
        with open(path, "rb", opener=_nonblocking) as fh:
            st = os.fstat(fh.fileno())  # the file actually opened (it may have been swapped since the stat)
            problem = special_file_problem(st.st_mode)
            if problem:
                raise MediaError(problem)
            size = st.st_size
            if size == 0:
                raise MediaError("file is empty (0 bytes)")
            if size > max_bytes:
                raise MediaError(f"file is {size / 1e9:.1f} GB, over the {max_bytes / 1e9:.1f} GB limit")
            data = fh.read()
    except OSError as exc:
        raise MediaError(f"cannot read file: {exc.strerror or exc}") from None
    kind = sniff(data[:64])
    claimed = claimed_type(display_path(path))
    if kind is None:
        what = f"named like {claimed} ({Path(display_path(path)).suffix})" if claimed else "unknown type"
        raise MediaError(f"content is not a recognised image, audio or video format ({what})")
    return LoadedFile(path, data, hashlib.sha256(data).hexdigest(), kind[0], kind[1])


def sha256_file(path: str | os.PathLike) -> str:
    """sha256 of a file, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
