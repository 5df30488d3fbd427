"""Sniffing by content, safe decoding, folder walking and loading."""

from __future__ import annotations

import io
import json
import os
import struct
import time
import wave
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from scanner.errors import MediaError
from scanner.media import files as files_mod
from scanner.media.files import Candidate, display_path, is_candidate_media, load, sha256_file, walk
from scanner.media.image import decode_image, straight_rgba, thumbnail_jpeg, to_rgb
from scanner.media.sniff import claimed_type, sniff

MAX_PIXELS = 512_000_000
RED, BLUE, WHITE = (255, 0, 0), (0, 0, 255), (255, 255, 255)


# --------------------------------------------------------------------------- helpers


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _noise(w: int = 64, h: int = 48, seed: int = 0) -> Image.Image:
    arr = np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    return Image.fromarray(arr, "RGB")


def _wav_bytes() -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00\x01" * 800)
    return buf.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _bomb_png(width: int, height: int) -> bytes:
    """A tiny PNG whose IHDR declares ``width`` x ``height`` RGB pixels (valid CRCs)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat)
            + _png_chunk(b"IEND", b""))


def _close(px, expected, tol=40) -> bool:
    return all(abs(int(a) - int(b)) <= tol for a, b in zip(px, expected))


# --------------------------------------------------------------------------- sniff


@pytest.mark.parametrize(
    "fmt, expected",
    [("PNG", "png"), ("JPEG", "jpeg"), ("GIF", "gif"), ("WEBP", "webp"), ("BMP", "bmp"), ("TIFF", "tiff")],
)
def test_sniff_real_image_bytes(fmt, expected):
    data = _encode(_noise(), fmt)
    assert sniff(data[:64]) == ("image", expected)


def test_sniff_wav():
    assert sniff(_wav_bytes()[:64]) == ("audio", "wav")


@pytest.mark.parametrize(
    "head, expected",
    [
        (b"fLaC\x00\x00\x00\x22" + b"\x00" * 30, ("audio", "flac")),
        (b"OggS\x00\x02" + b"\x00" * 30, ("audio", "ogg")),
        (b"ID3\x04\x00" + b"\x00" * 30, ("audio", "mp3")),
        (b"\x00\x00\x00\x20ftypisom" + b"\x00" * 20, ("video", "mp4")),
        (b"\x00\x00\x00\x20ftypM4A " + b"\x00" * 20, ("audio", "m4a")),
        (b"\x00\x00\x00\x18ftypheic" + b"\x00" * 20, ("image", "heic")),
        (b"\x1a\x45\xdf\xa3" + b"\x00" * 30, ("video", "matroska")),
        (b"RIFF\x00\x00\x00\x00AVI LIST", ("video", "avi")),
    ],
)
def test_sniff_signatures(head, expected):
    assert sniff(head) == expected


@pytest.mark.parametrize(
    "head",
    [b"", b"hello, world\nthis is a sidecar note\n", b"{\"prompt\": \"a cat\"}", b"\x00" * 64,
     b"RIFF\x00\x00\x00\x00JUNK", b"\x89PNG"],
)
def test_sniff_non_media(head):
    assert sniff(head) is None


def test_sniff_random_text_never_media():
    rng = np.random.default_rng(1)
    letters = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz ,.\n0123456789", np.uint8)
    for _ in range(200):
        text = bytes(rng.choice(letters, size=64))
        assert sniff(text) is None, text


def test_claimed_type():
    assert claimed_type("x/Photo.JPG") == "image"
    assert claimed_type("clip.wav") == "audio"
    assert claimed_type("movie.MOV") == "video"
    assert claimed_type("notes.txt") is None
    assert claimed_type("png") is None


# --------------------------------------------------------------------------- decode_image


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP", "BMP", "TIFF"])
def test_decode_common_formats_to_rgb(fmt):
    img = decode_image(_encode(_noise(40, 30), fmt), MAX_PIXELS)
    assert img.mode == "RGB"
    assert img.size == (40, 30)


def test_decode_truncated_jpeg():
    data = _encode(_noise(256, 256), "JPEG", quality=95)
    with pytest.raises(MediaError):
        decode_image(data[: len(data) // 2], MAX_PIXELS)


def test_decode_truncated_png():
    data = _encode(_noise(256, 256), "PNG")
    with pytest.raises(MediaError):
        decode_image(data[: len(data) // 2], MAX_PIXELS)


def test_decode_png_cut_inside_header():
    data = _encode(_noise(), "PNG")
    with pytest.raises(MediaError):
        decode_image(data[:20], MAX_PIXELS)


@pytest.mark.parametrize("data", [b"", b"plain text, not an image", _wav_bytes()])
def test_decode_non_image(data):
    with pytest.raises(MediaError):
        decode_image(data, MAX_PIXELS)


def test_decompression_bomb_refused_from_header(monkeypatch):
    loads = []
    real_load = ImageFile.ImageFile.load

    def spy(self, *a, **kw):
        loads.append(self.size)
        return real_load(self, *a, **kw)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    data = _bomb_png(100_000, 100_000)
    assert len(data) < 200
    t0 = time.perf_counter()
    with pytest.raises(MediaError) as err:
        decode_image(data, MAX_PIXELS)
    assert time.perf_counter() - t0 < 1.0
    msg = str(err.value)
    assert "limit" in msg
    assert "100000x100000" in msg
    assert loads == []  # refused before any pixel decoding


def test_pixel_limit_boundary():
    img = Image.new("RGB", (100, 50), RED)
    data = _encode(img, "PNG")
    assert decode_image(data, max_pixels=5000).size == (100, 50)
    with pytest.raises(MediaError, match="limit"):
        decode_image(data, max_pixels=4999)


def test_max_side_bounds_decoded_size():
    img = decode_image(_encode(Image.new("RGB", (3000, 100), RED), "PNG"), MAX_PIXELS, max_side=512)
    assert max(img.size) <= 512
    img = decode_image(_encode(Image.new("RGB", (4096, 64), BLUE), "JPEG"), MAX_PIXELS, max_side=1024)
    assert max(img.size) <= 1024
    img = decode_image(_encode(Image.new("RGB", (3000, 100), RED), "PNG"), MAX_PIXELS, max_side=None)
    assert img.size == (3000, 100)


@pytest.mark.parametrize("fmt", ["JPEG", "TIFF"])
def test_cmyk_decodes_to_rgb(fmt):
    cmyk = Image.new("CMYK", (32, 32), (0, 255, 255, 0))  # pure red in CMYK
    img = decode_image(_encode(cmyk, fmt), MAX_PIXELS)
    assert img.mode == "RGB"
    assert _close(img.getpixel((16, 16)), RED, tol=60), img.getpixel((16, 16))


def test_16bit_greyscale_is_stretched_to_8bit():
    arr = np.tile(np.linspace(1000, 60000, 64).astype(np.uint16), (16, 1))
    src = Image.fromarray(arr)
    assert src.mode == "I;16"
    img = decode_image(_encode(src, "PNG"), MAX_PIXELS)
    assert img.mode == "RGB"
    assert img.size == (64, 16)
    out = np.asarray(img)
    assert out[0, 0].tolist() == [0, 0, 0]
    assert out[0, -1].tolist() == [255, 255, 255]
    assert out[0, 32, 0] in range(120, 136)  # a gradient, not clipped to white


def test_flat_16bit_image_does_not_divide_by_zero():
    src = Image.fromarray(np.full((8, 8), 4242, np.uint16))
    img = decode_image(_encode(src, "PNG"), MAX_PIXELS)
    assert img.mode == "RGB"


def test_palette_with_transparency_composited_on_white():
    p = Image.new("P", (10, 10), 0)
    p.putpalette([0, 0, 0] + [255, 0, 0] + [0] * (254 * 3))
    for x in range(5):
        for y in range(10):
            p.putpixel((x, y), 1)  # left half red, right half index 0
    data = _encode(p, "PNG", transparency=0)  # index 0 (black) is transparent
    img = decode_image(data, MAX_PIXELS)
    assert img.mode == "RGB"
    assert img.getpixel((1, 1)) == RED
    assert img.getpixel((8, 1)) == WHITE  # transparent black shows as white, not black


def test_la_composited_on_white():
    la = Image.new("LA", (10, 10), (0, 255))
    for y in range(10):
        la.putpixel((9, y), (0, 0))  # fully transparent black
    img = decode_image(_encode(la, "PNG"), MAX_PIXELS)
    assert img.mode == "RGB"
    assert img.getpixel((0, 0)) == (0, 0, 0)
    assert img.getpixel((9, 0)) == WHITE


def test_rgba_composited_on_white():
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    img = decode_image(_encode(rgba, "PNG"), MAX_PIXELS)
    assert img.getpixel((0, 0)) == WHITE


def test_animated_gif_gives_first_frame():
    frames = [Image.new("RGB", (20, 20), RED), Image.new("RGB", (20, 20), BLUE)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    data = buf.getvalue()
    assert Image.open(io.BytesIO(data)).n_frames == 2
    img = decode_image(data, MAX_PIXELS)
    assert img.mode == "RGB"
    assert _close(img.getpixel((10, 10)), RED, tol=10)


def test_exif_orientation_honoured():
    src = Image.new("RGB", (40, 20), BLUE)
    src.paste(RED, (0, 0, 20, 20))  # left half red
    exif = src.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    data = _encode(src, "JPEG", exif=exif.tobytes(), quality=95)
    img = decode_image(data, MAX_PIXELS)
    assert img.size == (20, 40)
    assert _close(img.getpixel((10, 5)), RED)  # left half became the top
    assert _close(img.getpixel((10, 35)), BLUE)


def test_to_rgb_float_mode():
    f = Image.fromarray(np.linspace(-1, 1, 16, dtype=np.float32).reshape(4, 4), "F")
    out = to_rgb(f)
    assert out.mode == "RGB"
    assert np.asarray(out).min() == 0 and np.asarray(out).max() == 255


def test_thumbnail_jpeg():
    data = thumbnail_jpeg(_noise(1000, 500), side=128)
    assert sniff(data[:64]) == ("image", "jpeg")
    assert max(Image.open(io.BytesIO(data)).size) == 128


# --------------------------------------------------------------------------- load


def test_load_png(tmp_path):
    data = _encode(_noise(), "PNG")
    p = tmp_path / "x.png"
    p.write_bytes(data)
    f = load(str(p), max_bytes=10**9)
    assert f.data == data
    assert f.media_type == "image" and f.format == "png"
    assert f.sha256 == sha256_file(p)
    assert len(f.sha256) == 64


def test_load_sniffs_content_not_extension(tmp_path):
    p = tmp_path / "really_a_jpeg.png"
    p.write_bytes(_encode(_noise(), "JPEG"))
    assert load(str(p), 10**9).format == "jpeg"


def test_load_zero_byte_file(tmp_path):
    p = tmp_path / "empty.png"
    p.write_bytes(b"")
    with pytest.raises(MediaError, match="empty"):
        load(str(p), 10**9)


def test_load_text_named_png(tmp_path):
    p = tmp_path / "fake.png"
    p.write_text("I am a text file pretending to be an image\n")
    with pytest.raises(MediaError) as err:
        load(str(p), 10**9)
    assert "not a recognised" in str(err.value)
    assert ".png" in str(err.value)


def test_load_unknown_binary(tmp_path):
    p = tmp_path / "blob"
    p.write_bytes(b"\x00\x01\x02" * 50)
    with pytest.raises(MediaError, match="unknown type"):
        load(str(p), 10**9)


def test_load_directory(tmp_path):
    d = tmp_path / "folder.png"
    d.mkdir()
    with pytest.raises(MediaError, match="not a regular file"):
        load(str(d), 10**9)


def test_load_missing(tmp_path):
    with pytest.raises(MediaError, match="cannot access"):
        load(str(tmp_path / "gone.png"), 10**9)


def test_load_over_size_limit(tmp_path):
    p = tmp_path / "big.png"
    p.write_bytes(_encode(_noise(), "PNG"))
    with pytest.raises(MediaError, match="limit"):
        load(str(p), max_bytes=100)


# --------------------------------------------------------------------------- walk


def _touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _rel(cands, root) -> list[str]:
    return [os.path.relpath(c.path, root) for c in cands]


def test_walk_sorted_recursive(tmp_path):
    root = tmp_path / "root"
    for name in ["b.png", "a.png", "C.png", "sub/d.png", "sub/deeper/e.png", "z.txt", "sub2/f.png"]:
        _touch(root / name)
    _touch(root / ".DS_Store")
    _touch(root / "._a.png")
    _touch(root / "sub" / "Thumbs.db")
    got = list(walk([root]))
    assert all(isinstance(c, Candidate) and c.problem is None for c in got)
    assert _rel(got, root) == ["C.png", "a.png", "b.png", "sub/d.png", "sub/deeper/e.png", "sub2/f.png", "z.txt"]


def test_walk_file_and_missing_roots(tmp_path):
    f = _touch(tmp_path / "one.png")
    got = list(walk([f, tmp_path / "missing"]))
    assert got[0] == Candidate(str(f))
    assert got[1].path == str(tmp_path / "missing")
    assert got[1].problem and "cannot access" in got[1].problem


def test_walk_same_folder_twice_lists_once(tmp_path):
    _touch(tmp_path / "d" / "a.png")
    got = list(walk([tmp_path / "d", tmp_path / "d"]))
    assert _rel(got, tmp_path) == ["d/a.png"]


def test_walk_symlink_loop_becomes_media_error(tmp_path):
    root = tmp_path / "root"
    _touch(root / "ok.png", _encode(_noise(), "PNG"))
    os.symlink("b", root / "a")
    os.symlink("a", root / "b")
    got = list(walk([root]))
    assert _rel(got, root) == ["a", "b", "ok.png"]
    for c in got[:2]:
        assert is_candidate_media(c.path)  # unreadable: counts as an asset so it becomes an error
        with pytest.raises(MediaError, match="cannot access"):
            load(c.path, 10**9)
    assert load(got[2].path, 10**9).format == "png"


def test_walk_dangling_symlink(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    os.symlink("nowhere.png", root / "dangling.png")
    got = list(walk([root]))
    assert _rel(got, root) == ["dangling.png"]
    with pytest.raises(MediaError):
        load(got[0].path, 10**9)


def test_walk_directory_link_to_parent_terminates(tmp_path):
    root = tmp_path / "root"
    _touch(root / "a.png")
    _touch(root / "sub" / "b.png")
    os.symlink("..", root / "sub" / "up")
    os.symlink(".", root / "self")
    got = list(walk([root]))
    assert _rel(got, root) == ["a.png", "sub/b.png"]


def test_walk_follows_directory_link_out_of_tree_once(tmp_path):
    _touch(tmp_path / "external" / "e.png")
    root = tmp_path / "root"
    _touch(root / "a.png")
    os.symlink(tmp_path / "external", root / "ext")
    os.symlink(tmp_path / "external", root / "ext2")
    got = list(walk([root]))
    assert _rel(got, root) == ["a.png", "ext/e.png"]


def test_walk_unlistable_directory_is_a_problem_candidate(tmp_path, monkeypatch):
    root = tmp_path / "root"
    _touch(root / "a.png")
    _touch(root / "locked" / "secret.png")
    real_scandir = os.scandir
    locked = os.fspath(root / "locked")

    def fake_scandir(path="."):
        if os.fspath(path) == locked:
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr(files_mod.os, "scandir", fake_scandir)
    got = list(walk([root]))
    monkeypatch.undo()
    assert _rel(got, root) == ["a.png", "locked"]
    assert got[0].problem is None
    assert got[1].problem and "cannot list directory" in got[1].problem
    assert "Permission denied" in got[1].problem


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root can read any directory")
def test_walk_really_unreadable_directory(tmp_path):
    root = tmp_path / "root"
    _touch(root / "locked" / "x.png")
    os.chmod(root / "locked", 0)
    try:
        got = list(walk([root]))
    finally:
        os.chmod(root / "locked", 0o755)
    assert len(got) == 1 and got[0].problem


def test_walk_non_utf8_file_name(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    raw = os.path.join(os.fsencode(root), b"caf\xe9.png")
    try:
        with open(raw, "wb") as fh:
            fh.write(_encode(_noise(), "PNG"))
    except OSError as exc:  # some filesystems refuse non-UTF-8 names
        pytest.skip(f"filesystem refuses non-UTF-8 names: {exc}")
    _touch(root / "plain.png", _encode(_noise(seed=2), "PNG"))
    got = list(walk([root]))
    assert len(got) == 2
    odd = next(c for c in got if "caf" in c.path)
    assert os.fsencode(odd.path) == raw  # the exact bytes name survives
    assert odd.display == display_path(odd.path)
    assert odd.display.endswith("caf\\xe9.png")
    encoded = json.dumps({"path": odd.display}, ensure_ascii=False).encode("utf-8")
    assert json.loads(encoded)["path"] == odd.display
    assert is_candidate_media(odd.path)
    f = load(odd.path, 10**9)
    assert f.format == "png"


def test_display_path_is_identity_for_utf8():
    assert display_path("/x/été/ü.png") == "/x/été/ü.png"
    assert display_path(Path("a/b.png")) == "a/b.png"
    assert display_path(b"/x/caf\xe9.png") == "/x/caf\\xe9.png"


def test_is_candidate_media(tmp_path):
    png = _touch(tmp_path / "noext", _encode(_noise(), "PNG"))
    note = _touch(tmp_path / "notes.txt", b"hello")
    fake = _touch(tmp_path / "fake.jpg", b"hello")
    assert is_candidate_media(str(png))  # sniffed
    assert not is_candidate_media(str(note))  # sidecar: skipped
    assert is_candidate_media(str(fake))  # claims media: must become an error


def _half_transparent_art() -> Image.Image:
    """A glass-like work: colours under alpha from fully transparent to opaque."""
    rng = np.random.default_rng(11)
    rgb = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    alpha = np.tile(np.linspace(0, 255, 80).astype(np.uint8), (60, 1))
    return Image.fromarray(np.dstack([rgb, alpha]), "RGBA")


def test_straight_rgba_recovers_the_colours_the_decoder_composited_on_white():
    art = _half_transparent_art()
    buf = io.BytesIO()
    art.save(buf, "PNG")
    decoded = decode_image(buf.getvalue(), 10_000_000)
    assert decoded.mode == "RGB"  # composited on white, the alpha kept beside the pixels
    back = straight_rgba(decoded)
    assert back is not None and back.mode == "RGBA"
    a = np.asarray(art).astype(np.int32)
    b = np.asarray(back).astype(np.int32)
    assert np.array_equal(a[..., 3], b[..., 3])
    grey = np.full_like(a[..., :3], 128)
    on_grey = lambda x: x[..., :3] * x[..., 3:] / 255 + grey * (1 - x[..., 3:] / 255)  # noqa: E731
    # composited anywhere else, the recovered work looks as the original does (rounding only)
    assert np.abs(on_grey(a) - on_grey(b)).max() <= 1.0
    # the old way (the composited pixels with the alpha put back) blends half-transparent pixels twice
    twice = np.dstack([np.asarray(decoded).astype(np.int32), a[..., 3]])
    assert np.abs(on_grey(a) - on_grey(twice)).max() > 50


def test_straight_rgba_of_opaque_and_own_alpha_images():
    assert straight_rgba(Image.new("RGB", (10, 10), (1, 2, 3))) is None
    assert straight_rgba(Image.new("RGBA", (10, 10), (1, 2, 3, 255))) is None  # nothing transparent
    art = _half_transparent_art()
    assert np.array_equal(np.asarray(straight_rgba(art)), np.asarray(art))
