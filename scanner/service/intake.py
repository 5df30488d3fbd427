"""Getting a request's asset to a file the scanner can read, safely.

Uploads are streamed straight into a private temp file (``mkstemp`` in a 0700 folder, mode
0600) and stop at the size limit; nothing is kept in memory. Server-side paths are only read
under the allowed roots: the path is resolved (``..`` and symlinks) and must stay inside a
root, the file is opened once without following a final symlink, must be a regular file
(no directories, devices, FIFOs or sockets; a FIFO never blocks the open), and the open file
descriptor itself is checked to lie inside a root again. The scanner then reads that very
descriptor (``/proc/self/fd/N``), so swapping a path component for a symlink after the check
changes nothing.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import json
import logging
import os
import shutil
import stat
import tempfile
import time
from pathlib import Path
from typing import Any

from python_multipart.multipart import MultipartParseError, MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from scanner.service.config import ServiceConfig
from scanner.service.errors import ApiError

MAX_PARTS = 16
NO_FILE_HINT = ("send the asset as multipart/form-data field 'file' (or JSON {\"path\": ...} when the server "
                "allows server-side paths)")
MAX_LABEL = 255
DRAIN_BYTES = 16 * 1024 * 1024  # after a 413, read (and drop) at most this much more so the client sees the answer
DRAIN_SECONDS = 1.0
_FD_DIR = "/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"
UPLOAD_DIR_PREFIX = "scanner-uploads-"
OWNER_LOCK = ".owner.lock"
log = logging.getLogger("scanner.service")


class Intake:
    """The file one request asks about: what the scanner reads and what the answer calls it.

    ``close`` removes the private temp file (uploads) or closes the descriptor (server
    paths); it is idempotent, and only the content's sha256 and the result outlive it.
    """

    def __init__(self, path: str, label: str, source: str, fd: int | None = None, temp: str | None = None):
        self.path = path
        self.label = label
        self.source = source  # "upload" or "path"
        self._fd = fd
        self._temp = temp
        self.size = 0

    @classmethod
    def upload(cls, folder: Path) -> "Intake":
        fd, path = tempfile.mkstemp(prefix="upload-", dir=folder)  # O_EXCL, mode 0600
        return cls(path, "upload", "upload", fd=fd, temp=path)

    def write(self, data: bytes) -> None:
        assert self._fd is not None and self._temp is not None
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]

    def finish_upload(self) -> None:
        """Close the write descriptor; the scanner opens the file by path."""
        if self._temp is not None and self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass
        temp, self._temp = self._temp, None
        if temp is not None:
            try:
                os.unlink(temp)
            except FileNotFoundError:
                pass


class UploadDir:
    """A server's private upload folder ``path`` (``<root>/files``), and an exclusive ``flock`` on
    ``<root>/.owner.lock`` held for as long as the server lives. The kernel drops the lock when the
    process dies however it dies (``kill -9`` included): that is how the next server start knows
    a folder, with its half-written uploads, is left over."""

    def __init__(self, root: Path, lock_fd: int):
        self.root = root
        self.path = root / "files"
        self._lock_fd: int | None = lock_fd

    def remove(self) -> None:
        """Delete the folder and its files, then let go of the lock."""
        shutil.rmtree(self.root, ignore_errors=True)
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            os.close(fd)


def private_upload_dir(parent: Path | None) -> UploadDir:
    """A fresh folder only this user can enter (``mkdtemp`` makes it 0700), after removing the
    folders of servers that died without cleaning up (their half-written uploads included)."""
    if parent is not None:
        Path(parent).mkdir(parents=True, exist_ok=True)
    remove_abandoned_upload_dirs(Path(parent) if parent is not None else Path(tempfile.gettempdir()))
    root = Path(tempfile.mkdtemp(prefix=UPLOAD_DIR_PREFIX, dir=parent))
    fd = os.open(root / OWNER_LOCK, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    folder = UploadDir(root, fd)
    os.mkdir(folder.path, 0o700)
    return folder


def remove_abandoned_upload_dirs(parent: Path) -> list[Path]:
    """Remove this user's upload folders under ``parent`` whose server is gone (nobody holds
    their lock). Folders of running servers, of other users, and links are left alone."""
    removed = []
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(UPLOAD_DIR_PREFIX):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
            if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
                continue
            fd = os.open(os.path.join(entry.path, OWNER_LOCK), os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            continue  # no lock file: not a folder this version made (or not ours to judge)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue  # its server is alive
        try:
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(Path(entry.path))
            log.info("removed the upload folder of a server that did not shut down: %s", entry.path)
        finally:
            os.close(fd)
    return removed


# ----- uploads -----------------------------------------------------------------------
def _declared_length(request: Request) -> int | None:
    raw = request.headers.get("content-length")
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        raise ApiError(400, "bad_request", "Content-Length is not a number") from None


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "upload_too_large", f"the upload is over the {_fmt_bytes(limit)} limit of this server")


def _fmt_bytes(n: int) -> str:
    return f"{n / 1024 / 1024:.0f} MiB" if n >= 1024 * 1024 else f"{n} bytes"


async def read_upload(request: Request, intake: Intake, config: ServiceConfig) -> dict[str, str]:
    """Stream a multipart body: the ``file`` part into ``intake``; returns the small text fields."""
    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if ctype != b"multipart/form-data" or not boundary:
        raise ApiError(400, "bad_request", "multipart/form-data needs a boundary")
    limit = config.max_upload_bytes
    body_limit = limit + MAX_PARTS * (config.max_field_bytes + 1024)
    declared = _declared_length(request)
    stream = request.stream()
    if declared is not None and declared > body_limit:
        await _drain(request, stream)
        raise _too_large(limit)

    fields: dict[str, str] = {}
    part: dict[str, Any] = {}
    header: dict[str, bytes] = {"field": b"", "value": b""}
    state = {"parts": 0, "files": 0, "error": None}

    def fail(err: ApiError) -> None:
        if state["error"] is None:
            state["error"] = err

    def on_part_begin() -> None:
        part.clear()
        part.update(headers={}, name=None, filename=None, data=bytearray())
        state["parts"] += 1
        if state["parts"] > MAX_PARTS:
            fail(ApiError(400, "bad_request", f"too many form parts (at most {MAX_PARTS})"))

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header["field"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header["value"] += data[start:end]

    def on_header_end() -> None:
        part["headers"][header["field"].decode("latin-1").strip().lower()] = header["value"]
        header["field"], header["value"] = b"", b""

    def on_headers_finished() -> None:
        disp, opts = parse_options_header(part["headers"].get("content-disposition", b""))
        if disp != b"form-data" or b"name" not in opts:
            fail(ApiError(400, "bad_request", "every form part needs Content-Disposition: form-data; name=..."))
            return
        part["name"] = opts[b"name"].decode("utf-8", "replace")
        if b"filename" in opts:
            part["filename"] = opts[b"filename"].decode("utf-8", "replace")
        if part["name"] == "file":
            state["files"] += 1
            if state["files"] > 1:
                fail(ApiError(400, "bad_request", "send one file per request"))
            elif part["filename"] is not None:
                intake.label = _clean_label(part["filename"])
        elif part["filename"] is not None:  # a file under another name: say what is wrong, not "too long"
            fail(ApiError(400, "bad_request", f"no file part named 'file' (a file came in form field "
                                              f"{_clean_label(part['name'])!r}): {NO_FILE_HINT}"))

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if state["error"] is not None or part.get("name") is None:
            return
        chunk = data[start:end]
        if part["name"] == "file":
            intake.size += len(chunk)
            if intake.size > limit:
                fail(_too_large(limit))
                return
            intake.write(chunk)
        else:
            part["data"] += chunk
            if len(part["data"]) > config.max_field_bytes:
                fail(ApiError(400, "bad_request", f"form field '{part['name']}' is over {config.max_field_bytes} bytes"))

    def on_part_end() -> None:
        name = part.get("name")
        if state["error"] is None and name is not None and name != "file":
            try:
                fields[name] = bytes(part["data"]).decode("utf-8")
            except UnicodeDecodeError:
                fail(ApiError(400, "bad_request", f"form field '{name}' is not UTF-8 text"))

    parser = MultipartParser(boundary, {
        "on_part_begin": on_part_begin, "on_header_field": on_header_field, "on_header_value": on_header_value,
        "on_header_end": on_header_end, "on_headers_finished": on_headers_finished, "on_part_data": on_part_data,
        "on_part_end": on_part_end,
    })
    received = 0
    try:
        async for chunk in stream:
            received += len(chunk)
            if received > body_limit:
                fail(_too_large(limit))
            if state["error"] is None:
                parser.write(chunk)
            if state["error"] is not None:
                break
        if state["error"] is None:
            parser.finalize()
    except MultipartParseError as exc:
        raise ApiError(400, "bad_request", f"malformed multipart body: {exc}") from None
    except OSError as exc:  # the temp folder's disk is full or gone
        raise ApiError(503, "storage_error", f"cannot store the upload: {exc.strerror or exc}",
                       {"Retry-After": "30"}) from None
    except ClientDisconnect:
        raise ApiError(400, "client_disconnected", "the client went away during the upload") from None
    if state["error"] is not None:
        if state["error"].status == 413:
            await _drain(request, stream)
        raise state["error"]
    if state["files"] != 1:
        raise ApiError(400, "bad_request", f"no file part named 'file': {NO_FILE_HINT}")
    intake.finish_upload()
    return fields


async def _drain(request: Request, stream: Any) -> None:
    """Read (and drop) a bounded part of a rejected body, so that a client still sending it reads
    the 413 instead of a connection reset. A client waiting on ``Expect: 100-continue`` sent
    nothing yet: it gets the answer at once."""
    if "100-continue" in request.headers.get("expect", "").lower():
        return
    dropped, until = 0, time.monotonic() + DRAIN_SECONDS
    try:
        while dropped < DRAIN_BYTES and time.monotonic() < until:
            chunk = await asyncio.wait_for(anext(stream), timeout=max(0.01, until - time.monotonic()))
            dropped += len(chunk)
            if not chunk:
                break
    except (StopAsyncIteration, asyncio.TimeoutError, ClientDisconnect):
        pass


def _clean_label(filename: str) -> str:
    """The client's file name as results call it: last component, printable, bounded."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c if c.isprintable() else "?" for c in name).strip() or "upload"
    return name[:MAX_LABEL]


async def read_json(request: Request, config: ServiceConfig) -> dict[str, Any]:
    """A small JSON object body (server-side path requests)."""
    declared = _declared_length(request)
    if declared is not None and declared > config.max_json_bytes:
        raise ApiError(413, "body_too_large", f"JSON bodies are limited to {config.max_json_bytes} bytes")
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > config.max_json_bytes:
                raise ApiError(413, "body_too_large", f"JSON bodies are limited to {config.max_json_bytes} bytes")
    except ClientDisconnect:
        raise ApiError(400, "client_disconnected", "the client went away while sending the body") from None
    try:
        data = json.loads(bytes(body))
    except ValueError as exc:
        raise ApiError(400, "bad_request", f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(400, "bad_request", 'the JSON body must be an object like {"path": "..."}')
    return data


# ----- server-side paths ---------------------------------------------------------------
def resolve_roots(roots: tuple[Path, ...]) -> tuple[str, ...]:
    """Allowed roots as real, absolute paths (they must exist and be directories)."""
    out = []
    for r in roots:
        real = os.path.realpath(os.path.expanduser(str(r)))
        if not os.path.isdir(real):
            from scanner.errors import ConfigError

            raise ConfigError(f"--allow-root {r} is not an existing directory")
        out.append(real)
    return tuple(out)


def _inside(path: str, roots: tuple[str, ...]) -> bool:
    return any(path == r or path.startswith(r.rstrip(os.sep) + os.sep) for r in roots)


def open_server_path(raw: Any, roots: tuple[str, ...]) -> Intake:
    """Open a file named in a request, or raise the 4xx that says why not."""
    if not roots:
        raise ApiError(403, "paths_disabled", "this server does not read server-side paths; upload the file as "
                                              "multipart/form-data, or start the server with --allow-root DIR")
    if not isinstance(raw, str) or not raw:
        raise ApiError(400, "bad_request", "'path' must be a non-empty string")
    if "\x00" in raw or len(raw) > 4096:
        raise ApiError(400, "bad_request", "'path' contains a NUL byte or is too long")
    if not os.path.isabs(raw):
        raise ApiError(400, "bad_request", "'path' must be absolute (inside one of the allowed roots)")
    real = os.path.realpath(raw)  # resolves "..", "." and every symlink on the way
    if not _inside(real, roots):
        raise ApiError(403, "path_not_allowed", "the path is outside the folders this server may read")
    try:
        fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
                     | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            raise ApiError(404, "not_found", "no such file under the allowed roots") from None
        if exc.errno == errno.ELOOP:  # the last component became a symlink after resolving
            raise ApiError(403, "path_not_allowed", "the path changed while it was being opened") from None
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise ApiError(403, "not_readable", "the server may not read this file") from None
        raise ApiError(400, "bad_request", f"cannot open the file: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            what = ("a directory" if stat.S_ISDIR(st.st_mode) else "a FIFO" if stat.S_ISFIFO(st.st_mode)
                    else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)
                    else "a socket" if stat.S_ISSOCK(st.st_mode) else "not a regular file")
            raise ApiError(400, "not_a_regular_file", f"the path is {what}; only regular files can be checked")
        if _FD_DIR == "/proc/self/fd":
            opened = os.readlink(f"{_FD_DIR}/{fd}")
            if not _inside(opened, roots):
                raise ApiError(403, "path_not_allowed", "the path changed while it was being opened")
    except BaseException:
        os.close(fd)
        raise
    return Intake(f"{_FD_DIR}/{fd}", real, "path", fd=fd)
