"""Defects from the hostile reliability pass (issue 15) that live in the media layer and the farm jobs:
special files in a scanned folder, multi-frame images, memory budgets, signed and unambiguous records."""

from __future__ import annotations

import json
import os
import socket
import threading
from pathlib import Path

import pytest

from scanner.api import Scanner
from scanner.testing.fixtures import artwork


def _unblock_fifo(path: Path) -> None:
    """Open the FIFO for writing (non-blocking) and close it, so a reader stuck in open() returns."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return
    os.close(fd)


def test_special_files_in_a_folder_are_errors_and_never_opened(settings, works, tmp_path):
    folder = tmp_path / "deliv"
    folder.mkdir()
    os.mkfifo(folder / "pipe")  # no media extension: the scan used to open it to sniff, and block
    os.mkfifo(folder / "pipe.png")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(folder / "control.sock"))
    os.symlink("/dev/zero", folder / "zero")  # a device behind a link: reading it never ends
    (folder / "copy.jpg").write_bytes(works[0].read_bytes())
    s = Scanner(settings)
    s.add_reference(works)
    results: list = []
    worker = threading.Thread(target=lambda: results.extend(s.scan([folder])), daemon=True)
    try:
        worker.start()
        worker.join(30)
        hung = worker.is_alive()
    finally:
        _unblock_fifo(folder / "pipe")
        _unblock_fifo(folder / "pipe.png")
        sock.close()
    assert not hung, "the scan blocked on a special file"
    got = {Path(r.path).name: r for r in results}
    assert got["copy.jpg"].verdict.value == "block"
    for name, words in {"pipe": "FIFO", "pipe.png": "FIFO", "control.sock": "socket",
                        "zero": "character device"}.items():
        assert got[name].verdict.value == "error", name
        assert words in got[name].error and "not a regular file" in got[name].error, (name, got[name].error)


def test_a_fifo_given_as_the_scan_root_is_an_error(settings, works, tmp_path):
    fifo = tmp_path / "lonely"
    os.mkfifo(fifo)
    s = Scanner(settings)
    s.add_reference(works)
    results: list = []
    worker = threading.Thread(target=lambda: results.extend(s.scan([fifo])), daemon=True)
    worker.start()
    worker.join(30)
    _unblock_fifo(fifo)
    assert not worker.is_alive()
    (r,) = results
    assert r.verdict.value == "error" and "FIFO" in r.error
