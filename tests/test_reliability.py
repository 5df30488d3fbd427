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


# ----- every frame of an animation, every page of a TIFF ---------------------------------------------
def _animation(frames, fmt: str, **kw) -> bytes:
    import io

    buf = io.BytesIO()
    frames[0].save(buf, fmt, save_all=True, append_images=frames[1:], **kw)
    return buf.getvalue()


def test_a_copy_in_frame_4_of_a_gif_or_on_page_2_of_a_tiff_is_found(settings, works, tmp_path):
    from PIL import Image

    copy = Image.open(works[0]).convert("RGB").resize((400, 267))
    originals = [artwork(300 + i).resize((400, 267)) for i in range(6)]
    folder = tmp_path / "deliv"
    folder.mkdir()
    (folder / "anim.gif").write_bytes(_animation([*originals[:3], copy, *originals[3:5]], "GIF", duration=80))
    (folder / "pages.tif").write_bytes(_animation([originals[0], copy, originals[1]], "TIFF"))
    (folder / "clean.gif").write_bytes(_animation(originals, "GIF", duration=80))
    s = Scanner(settings)
    s.add_reference(works)
    got = {Path(r.path).name: r for r in s.scan([folder], thumb_dir=tmp_path / "thumbs")}
    gif, tif, clean = got["anim.gif"], got["pages.tif"], got["clean.gif"]
    assert gif.verdict.value == "block" and gif.findings[0].extra["frame"] == 3, gif
    assert gif.findings[0].extra["timecode"] == "frame 4" and gif.findings[0].extra["time"] == 0.24
    assert any("6 of 6 frames checked" in n for n in gif.notes), gif.notes
    assert tif.verdict.value == "block" and tif.findings[0].extra["timecode"] == "page 2", tif
    assert any("of 3 pages checked" in n for n in tif.notes)
    assert clean.verdict.value == "pass" and any("frames checked" in n for n in clean.notes)
    assert (tmp_path / "thumbs" / f"{gif.sha256}-f3.jpg").is_file()  # the matched frame for the report


def test_a_damaged_later_frame_makes_the_animation_an_error_not_a_pass(settings, works, tmp_path):
    originals = [artwork(300 + i).resize((400, 267)) for i in range(6)]
    data = _animation(originals, "GIF", duration=80)
    p = tmp_path / "cut.gif"
    p.write_bytes(data[: int(len(data) * 0.6)])
    s = Scanner(settings)
    s.add_reference(works)
    r = s.check(p)
    assert r.verdict.value == "error" and "could not be checked" in r.error, r


def test_frame_sampling_is_bounded_and_says_what_it_left_out():
    from scanner.media.frames import iter_image_frames
    from scanner.media.video import SamplingReport

    frames = [artwork(400 + i).resize((64, 48)) for i in range(40)]
    data = _animation(frames, "GIF", duration=40)
    rep = SamplingReport()
    sampled = list(iter_image_frames(data, 10**8, rep, max_frames=8))
    assert len(sampled) == 8 and rep.decoded == 40 and rep.capped and not rep.truncated
    assert sampled[-1].index >= 30  # spread over the whole animation, not the first eight
    assert any("not checked" in n for n in rep.notes)
    rep = SamplingReport()
    list(iter_image_frames(data, 10**8, rep, max_decoded=10))
    assert rep.truncated and any("only the first 10" in n for n in rep.notes)


# ----- memory: a budget from max_pixels, decodes bounded by memory -----------------------------------
def _png(img) -> bytes:
    import io

    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def test_a_decode_over_the_memory_budget_is_refused_before_any_pixel(monkeypatch):
    from PIL import Image, ImageFile

    from scanner.errors import MediaError
    from scanner.media.image import decode_image

    data = _png(Image.new("I;16", (1000, 1000)))  # 16-bit grey: 2 bytes a pixel, 4 more to convert
    loads = []
    real_load = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self, *a, **k: loads.append(1) or real_load(self, *a, **k))
    with pytest.raises(MediaError) as err:
        decode_image(data, max_pixels=1_000_000)  # the pixel limit allows it, the memory budget does not
    assert "decode budget" in str(err.value) and "6 MB" in str(err.value) and loads == []
    assert decode_image(data, max_pixels=2_000_000).size == (1000, 1000)


def test_concurrent_decodes_are_bounded_by_memory_not_by_threads(monkeypatch):
    import time
    from concurrent.futures import ThreadPoolExecutor

    from PIL import Image, ImageFile

    from scanner.media.image import decode_image

    active, most = [0], [0]
    lock = threading.Lock()
    real_load = ImageFile.ImageFile.load

    def slow_load(self, *a, **k):
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        try:
            time.sleep(0.05)
            return real_load(self, *a, **k)
        finally:
            with lock:
                active[0] -= 1

    monkeypatch.setattr(ImageFile.ImageFile, "load", slow_load)
    big = _png(artwork(5).resize((1500, 1500)))  # 9 MB decoded; the budget of 4 MP is 16 MB: one at a time
    with ThreadPoolExecutor(4) as pool:
        sizes = list(pool.map(lambda _: decode_image(big, max_pixels=4_000_000).size, range(8)))
    assert sizes == [(1500, 1500)] * 8 and most[0] == 1
    small = _png(artwork(5).resize((600, 600)))  # 1.4 MB each: several fit the budget together
    most[0] = 0
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: decode_image(small, max_pixels=4_000_000), range(8)))
    assert most[0] > 1


def test_peak_memory_of_a_huge_flat_png_stays_near_one_decoded_copy(tmp_path):
    import subprocess
    import sys

    from benchmarks.memory_limits import zero_png

    side = 10_000  # 400 MB decoded (Pillow keeps RGB in 4 bytes a pixel); the old decode took twice that and more
    png = tmp_path / "zeros.png"
    zero_png(png, side)
    code = ("import resource, sys; from scanner.media.image import decode_image; "
            "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; "
            "img = decode_image(open(sys.argv[1], 'rb').read(), 512_000_000); "
            "print(img.size, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) * 1024)")
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}  # no inherited tuning
    out = subprocess.run([sys.executable, "-c", code, str(png)], capture_output=True, text=True, timeout=300,
                         env=env, cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0, out.stderr
    grew = int(out.stdout.split()[-1])
    assert "(2048, 2048)" in out.stdout and grew < 1.4 * side * side * 4, grew / 1e6
