"""Video decoding and frame sampling on small clips encoded here with PyAV."""

from __future__ import annotations

import functools
import io
import re
from fractions import Fraction

import numpy as np
import pytest
from PIL import Image

av = pytest.importorskip("av")

from scanner.errors import MediaError  # noqa: E402
from scanner.media import video as V  # noqa: E402
from scanner.media.video import SamplingReport, iter_frames, probe_video, timecode  # noqa: E402
from scanner.testing.fixtures import artwork  # noqa: E402

SIZE = (160, 96)


# --------------------------------------------------------------------------- clip builders


def _has_encoder(name: str) -> bool:
    try:
        av.Codec(name, "w")
        return True
    except Exception:  # noqa: BLE001
        return False


H264 = "libx264" if _has_encoder("libx264") else "mpeg4"
AUDIO = "aac" if _has_encoder("aac") else ("libopus" if _has_encoder("libopus") else None)


@functools.lru_cache(maxsize=64)
def _art(seed: int, size=SIZE) -> Image.Image:
    return artwork(seed).resize(size, Image.Resampling.BILINEAR)


def encode(
    frames: list[tuple[Image.Image | np.ndarray, float]], *, fmt: str = "mp4", codec: str = H264,
    pix_fmt: str = "yuv420p", size=SIZE, audio: str | None = None, rotation: tuple[int, bool, bool] | None = None,
    time_base: Fraction = Fraction(1, 1000), sar: Fraction | None = None, options: dict | None = None,
) -> bytes:
    """Encode (picture, time) pairs; times become exact pts in ``time_base`` (variable rate allowed)."""
    buf = io.BytesIO()
    out = av.open(buf, mode="w", format=fmt)
    vs = out.add_stream(codec, rate=25, options=options or {})
    vs.width, vs.height = size
    vs.pix_fmt = pix_fmt
    vs.time_base = time_base
    vs.codec_context.time_base = time_base  # else the encoder rounds pts to 1/rate
    if sar is not None:
        vs.codec_context.sample_aspect_ratio = sar
    if rotation is not None:
        vs.set_display_rotation(rotation[0], hflip=rotation[1], vflip=rotation[2])
    astream = out.add_stream(audio, rate=48000) if audio else None
    for pic, t in frames:
        if isinstance(pic, np.ndarray):
            frame = av.VideoFrame.from_ndarray(pic, format="rgb24")
        else:
            frame = av.VideoFrame.from_image(pic)
        frame.pts = int(round(t / time_base))
        frame.time_base = time_base
        for packet in vs.encode(frame):
            out.mux(packet)
    for packet in vs.encode():
        out.mux(packet)
    if astream is not None:
        sr = 48000
        n = int(sr * (frames[-1][1] + 0.04))
        tone = (0.3 * np.sin(2 * np.pi * 440.0 * np.arange(n) / sr)).astype(np.float32)
        step = astream.codec_context.frame_size or 960
        for i in range(0, n, step):
            chunk = tone[i:i + step]
            chunk = np.pad(chunk, (0, step - chunk.shape[0]))
            af = av.AudioFrame.from_ndarray(chunk[None, :], format="flt", layout="mono")
            af.sample_rate, af.pts = sr, i
            for packet in astream.encode(af):
                out.mux(packet)
        for packet in astream.encode():
            out.mux(packet)
    out.close()
    return buf.getvalue()


def cut_clip(seconds: float = 5.0, cut_at: float = 2.0, fps: int = 25, **kw) -> bytes:
    """Artwork 1, a hard cut to artwork 2 at ``cut_at``."""
    a, b = _art(1), _art(2)
    n = int(round(seconds * fps))
    return encode([(a if i / fps < cut_at else b, i / fps) for i in range(n)], **kw)


def _samples(data, **kw) -> tuple[list[V.VideoFrame], SamplingReport]:
    rep = SamplingReport()
    return list(iter_frames(data, report=rep, **kw)), rep


def _mad(img: Image.Image, ref: Image.Image) -> float:
    a = np.asarray(img.convert("L").resize((32, 32)), dtype=np.float32)
    b = np.asarray(ref.convert("L").resize((32, 32)), dtype=np.float32)
    return float(np.mean(np.abs(a - b)))


def _which_art(img: Image.Image) -> int:
    d1, d2 = _mad(img, _art(1)), _mad(img, _art(2))
    return 1 if d1 < d2 else 2


@pytest.fixture(scope="module")
def cut_with_audio() -> bytes:
    return cut_clip(audio=AUDIO)


# --------------------------------------------------------------------------- sampling


def test_cut_is_sampled_with_right_times_and_frame_numbers(cut_with_audio):
    frames, rep = _samples(cut_with_audio)
    assert rep.decoded == 125 and rep.skipped_packets == 0 and not rep.truncated and not rep.capped
    assert [(f.index, f.reason) for f in frames] == [(0, "first"), (50, "cut"), (100, "interval")]
    for f in frames:
        assert f.time == pytest.approx(f.index / 25, abs=1e-3)
        assert f.timecode == timecode(f.time)
        assert f.image.mode == "RGB" and f.image.size == SIZE
    assert frames[1].timecode == "00:00:02.000"
    assert [_which_art(f.image) for f in frames] == [1, 2, 2]
    assert rep.cuts == 1 and rep.max_gap <= 2.0 + 1e-6


def test_max_interval_respected_on_a_static_clip():
    data = encode([(_art(3), i / 10) for i in range(61)])  # 6 s at 10 fps, nothing changes
    frames, rep = _samples(data, max_interval=0.55)
    times = [f.time for f in frames]
    assert times[0] == 0.0
    assert all(0 < b - a <= 0.55 + 1e-6 for a, b in zip(times, times[1:]))
    # the frame before the interval is overshot is the one taken: 0.5 s steps
    assert times[:4] == pytest.approx([0.0, 0.5, 1.0, 1.5], abs=1e-3)
    assert all(f.reason in ("first", "interval") for f in frames)


def test_variable_frame_rate_uses_pts_times():
    times = [0.0, 0.1, 0.15, 0.9, 1.0, 2.7, 2.75, 3.9, 6.5, 6.6, 6.62, 7.5]
    pics = [_art(4) for _ in times]
    frames, rep = _samples(encode(list(zip(pics, times)), fmt="matroska"), max_interval=1.0)
    assert rep.decoded == len(times)
    got = [f.time for f in frames]
    for f in frames:  # every sample sits on a real frame with its own number
        assert f.time == pytest.approx(times[f.index], abs=1e-3)
    # consecutive samples are <= max_interval apart, unless no frame lies between them
    for a, b in zip(frames, frames[1:]):
        assert b.time - a.time <= 1.0 + 1e-6 or b.index == a.index + 1
    assert got[0] == 0.0 and max(got) >= 6.5


def test_frame_cap_spreads_samples_over_the_whole_video():
    # 20 s, a cut every second (20 shots): far more candidates than the cap.
    pics = [_art(10 + i // 10) for i in range(200)]
    data = encode([(p, i / 10) for i, p in enumerate(pics)])
    frames, rep = _samples(data, max_interval=0.5, max_frames=8)
    assert len(frames) <= 8
    assert rep.capped and rep.notes and any("frame cap 8" in n for n in rep.notes)
    assert frames[-1].time >= 15.0  # not all spent at the start
    assert rep.dropped_scene_frames > 0


def test_frame_cap_without_known_duration_backs_off():
    # A raw H.264 elementary stream has no duration (and no pts): times come from the frame rate.
    pics = [_art(20) for _ in range(150)]
    data = encode([(p, i / 25) for i, p in enumerate(pics)], fmt="h264")
    frames, rep = _samples(data, max_interval=0.2, max_frames=10)
    assert rep.duration is None
    assert len(frames) <= 10 and rep.capped
    assert frames[-1].time > 3.0  # the back-off reaches past the middle of the 6 s stream
    times = [f.time for f in frames]
    assert times == sorted(times)


def test_max_frames_one_gives_first_frame_only(cut_with_audio):
    frames, rep = _samples(cut_with_audio, max_frames=1)
    assert [f.reason for f in frames] == ["first"] and rep.capped


def test_dissolve_is_caught_as_drift():
    a, b = np.asarray(_art(5), np.float32), np.asarray(_art(6), np.float32)
    pics = [np.clip(a + (b - a) * min(1.0, i / 20), 0, 255).astype(np.uint8) for i in range(25)]
    frames, rep = _samples(encode([(p, i / 25) for i, p in enumerate(pics)]), max_interval=10.0)
    assert rep.cuts == 0 and rep.drifts >= 1
    assert [f.reason for f in frames][:2] == ["first", "drift"]


def test_max_side_and_pixel_aspect_ratio():
    data = encode([(_art(1), 0.0), (_art(1), 0.04)], sar=Fraction(2, 1))
    info = probe_video(data)
    assert (info.width, info.height) == SIZE and (info.display_width, info.display_height) == (320, 96)
    frames, _ = _samples(data)
    assert frames[0].image.size == (320, 96)
    frames, _ = _samples(data, max_side=64)
    assert max(frames[0].image.size) == 64 and frames[0].image.size == (64, 19)


def test_keyframes_only_decodes_key_frames():
    if H264 != "libx264":
        pytest.skip("needs libx264 for GOP control")
    data = cut_clip(options={"g": "25", "keyint_min": "25"})
    frames, rep = _samples(data, keyframes_only=True)
    assert rep.keyframes_only and 5 <= rep.decoded <= 8  # 5 GOPs (+ a scene-cut key frame or two)
    assert frames[0].time == 0.0
    assert any(_which_art(f.image) == 2 for f in frames)
    assert all(abs(f.time * 25 - round(f.time * 25)) < 1e-3 for f in frames)


def test_timecode_format():
    assert timecode(0) == "00:00:00.000"
    assert timecode(3723.0456) == "01:02:03.046"
    assert timecode(36000) == "10:00:00.000"
    assert re.fullmatch(r"\d\d:\d\d:\d\d\.\d{3}", timecode(59.9996))


def test_stopping_early_closes_cleanly(cut_with_audio):
    gen = iter_frames(cut_with_audio)
    first = next(gen)
    gen.close()
    assert first.index == 0


# --------------------------------------------------------------------------- rotation


def _quadrant(size=(64, 32)) -> np.ndarray:
    """Black picture, white top-left quadrant, grey bottom-right: every dihedral turn differs."""
    w, h = size
    arr = np.zeros((h, w, 3), np.uint8)
    arr[: h // 2, : w // 2] = 255
    arr[h // 2:, w // 2:] = 128
    return arr


@pytest.mark.parametrize("deg, hflip, vflip", [
    (90, False, False), (-90, False, False), (180, False, False), (0, True, False),
    (0, False, True), (90, True, False), (-90, True, False), (0, False, False),
])
def test_rotation_metadata_makes_frames_upright(deg, hflip, vflip):
    if not hasattr(av.video.stream.VideoStream, "set_display_rotation"):
        pytest.skip("this PyAV cannot write rotation metadata (test_orientation_from_rotate_tag covers the helper)")
    pic = _quadrant()
    data = encode([(pic, 0.0), (pic, 0.04)], size=(64, 32), rotation=(deg, hflip, vflip))
    frames, _ = _samples(data)
    # PyAV's writer: ``deg`` counter-clockwise, then the flips.
    want = Image.fromarray(pic).rotate(deg, expand=True)
    if hflip:
        want = want.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if vflip:
        want = want.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    got = frames[0].image
    assert got.size == want.size
    assert _mad(got, want) < 12, (deg, hflip, vflip)
    info = probe_video(data)
    assert (info.display_width, info.display_height) == want.size
    assert info.mirrored == (hflip != vflip)


def test_orientation_from_rotate_tag():
    img = Image.fromarray(_quadrant())
    up = V.orientation_from_tag("90").apply(img)  # rotate tag: clockwise degrees
    assert up.size == (32, 64)
    assert np.asarray(up)[0, -1].tolist() == [255, 255, 255]  # top-left quadrant went to the top right
    assert V.orientation_from_tag("0").apply(img) is img
    assert V.orientation_from_tag("junk").ops == ()


# --------------------------------------------------------------------------- formats and audio


@pytest.mark.parametrize("codec, fmt, opts", [
    ("libx265", "mp4", {"preset": "ultrafast", "x265-params": "log-level=error"}),
    ("ffv1", "matroska", {}),
    ("libx264", "mp4", {}),
])
def test_ten_bit_video(codec, fmt, opts):
    if not _has_encoder(codec) or "yuv420p10le" not in [f.name for f in av.Codec(codec, "w").video_formats or []]:
        pytest.skip(f"no 10-bit {codec} encoder in this FFmpeg build")
    data = encode([(_art(7), i / 25) for i in range(10)], fmt=fmt, codec=codec, pix_fmt="yuv420p10le", options=opts)
    info = probe_video(data)
    assert info.pix_fmt == "yuv420p10le" and info.bit_depth == 10
    frames, _ = _samples(data)
    assert frames[0].image.mode == "RGB" and frames[0].image.size == SIZE
    assert _mad(frames[0].image, _art(7)) < 8


def test_probe_video_with_audio(cut_with_audio):
    info = probe_video(cut_with_audio)
    assert info.has_video and info.duration == pytest.approx(5.0, abs=0.1) and info.fps == pytest.approx(25.0)
    assert (info.width, info.height) == SIZE and info.rotation == 0 and not info.mirrored
    assert info.codec in ("h264", "mpeg4") and info.pix_fmt == "yuv420p" and info.frame_count == 125
    assert info.has_audio == (AUDIO is not None)


def test_video_only_has_no_audio():
    data = cut_clip(seconds=1.0)
    info = probe_video(data)
    assert info.has_video and not info.has_audio
    frames, _ = _samples(data)
    assert frames and frames[0].reason == "first"


@pytest.mark.skipif(AUDIO is None, reason="no audio encoder in this FFmpeg build")
def test_audio_track_of_a_video_decodes(cut_with_audio):
    audio = pytest.importorskip("scanner.media.audio")
    if not hasattr(audio, "decode_audio"):
        pytest.skip("decode_audio not available yet")
    clip = audio.decode_audio(cut_with_audio)
    assert clip.duration == pytest.approx(5.0, abs=0.2)
    assert float(np.abs(clip.samples).max()) > 0.1


def test_audio_only_file_has_no_video_stream():
    buf = io.BytesIO()
    out = av.open(buf, mode="w", format="wav")
    st = out.add_stream("pcm_s16le", rate=8000)
    af = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
    af.sample_rate, af.pts = 8000, 0
    for p in st.encode(af):
        out.mux(p)
    for p in st.encode():
        out.mux(p)
    out.close()
    data = buf.getvalue()
    info = probe_video(data)
    assert not info.has_video and info.has_audio
    with pytest.raises(MediaError, match="no video stream"):
        list(iter_frames(data))


# --------------------------------------------------------------------------- damaged input and limits


def test_garbage_and_empty_are_media_errors():
    with pytest.raises(MediaError, match="not a decodable video"):
        list(iter_frames(b"\x00\x00\x00\x20ftypisom" + bytes(range(256)) * 8))
    with pytest.raises(MediaError, match="empty"):
        list(iter_frames(b""))
    with pytest.raises(MediaError, match="no such file"):
        probe_video("/nonexistent/clip.mp4")


def test_truncated_mp4_without_index_is_a_media_error():
    data = cut_clip()  # moov atom written at the end
    with pytest.raises(MediaError, match="corrupt or truncated"):
        list(iter_frames(data[: len(data) * 2 // 3]))


def test_truncated_matroska_gives_partial_frames_with_a_note():
    data = cut_clip(fmt="matroska")
    frames, rep = _samples(data[: int(len(data) * 0.75)])
    assert frames and frames[0].index == 0
    assert rep.truncated and any("truncated" in n for n in rep.notes)
    assert rep.last_time < 4.5
    with pytest.raises(MediaError, match="no decodable frames"):
        list(iter_frames(data[:600]))


@pytest.mark.parametrize("fmt", ["mp4", "mpegts"])
def test_damaged_bytes_do_not_abort(fmt):
    data = bytearray(cut_clip(fmt=fmt))
    mid = len(data) // 2
    data[mid:mid + 400] = np.random.default_rng(0).integers(0, 256, 400, dtype=np.uint8).tobytes()
    frames, rep = _samples(bytes(data))
    # the damage lands on the key frame at the cut, so the cut may be seen or sampled by interval
    assert [f.time for f in frames] == pytest.approx([0.0, 2.0, 4.0], abs=1e-3)  # MPEG-TS starts at 1.4 s
    assert rep.decoded >= 120


class _FakePacket:
    def __init__(self, frames, bad=False):
        self.frames, self.bad = frames, bad

    def decode(self):
        if self.bad:
            raise av.error.InvalidDataError(1094995529, "Invalid data found when processing input")
        return self.frames


class _FakeFrame:
    def __init__(self, pts, corrupt=False):
        self.pts, self.time_base, self.is_corrupt = pts, Fraction(1, 10), corrupt


def test_undecodable_packets_are_skipped_and_counted():
    packets = [_FakePacket([_FakeFrame(0)]), _FakePacket([], bad=True), _FakePacket([_FakeFrame(2, corrupt=True)]),
               _FakePacket([], bad=True), _FakePacket([_FakeFrame(None)])]

    class Container:
        def demux(self, stream):
            return iter(packets)

    class Stream:
        time_base = Fraction(1, 10)

    rep = SamplingReport()
    got = [(t, f.pts) for f, t in V._decoded(av, Container(), Stream(), None, 10.0, rep)]
    assert got == [(0.0, 0), (0.2, 2), (pytest.approx(0.3), None)]  # no pts: previous time + 1/fps
    assert rep.skipped_packets == 2 and rep.corrupt_frames == 1


def test_duration_and_pixel_limits(cut_with_audio):
    with pytest.raises(MediaError, match="over the"):
        list(iter_frames(cut_with_audio, max_seconds=2.0))
    with pytest.raises(MediaError, match="MP limit"):
        list(iter_frames(cut_with_audio, max_pixels=10_000))


def test_argument_checks(cut_with_audio):
    with pytest.raises(ValueError):
        list(iter_frames(cut_with_audio, max_interval=0))
    with pytest.raises(ValueError):
        list(iter_frames(cut_with_audio, max_frames=0))


def test_path_source(tmp_path, cut_with_audio):
    p = tmp_path / "clip.mp4"
    p.write_bytes(cut_with_audio)
    assert [f.index for f in iter_frames(p)] == [0, 50, 100]
    assert probe_video(str(p)).frame_count == 125
