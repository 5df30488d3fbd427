"""One-thread detectors run beside the others (``scanning.SIDE_BY_SIDE``, ``Detector.one_thread``): the same
results as one after another, the first failing detector (in detector order) names an asset's error, an
interrupt starts no further detector, and torch's process-wide thread count survives two detectors setting
it at once."""

from __future__ import annotations

import signal
import threading
import time

import numpy as np
import pytest
from PIL import Image

from scanner import scanning
from scanner.api import Scanner
from scanner.config import Settings
from scanner.detectors.local import LocalDetector
from scanner.detectors.torch_threads import torch_threads
from scanner.testing.audio import encode_audio, synth_music
from scanner.testing.fixtures import artwork
from tests.conftest import by_name

pytestmark = pytest.mark.usefixtures("clean_env")  # fixture in conftest.py
SR = 16000


@pytest.fixture
def mixed(tmp_path):
    """A workspace with image and audio works, and a delivery holding copies, originals and a corrupt file."""
    ws = tmp_path / "ws"
    settings = Settings(catalog=ws / "catalog.db", index_dir=ws / "indexes", model_cache=ws / "models",
                        detectors=("image.pdq", "image.local", "audio.fingerprint"))
    refs = tmp_path / "refs"
    refs.mkdir()
    for seed in (1, 2):
        artwork(seed).save(refs / f"work_{seed}.png")
    song = synth_music(21, seconds=30.0)
    (refs / "song.wav").write_bytes(encode_audio(song, SR, "wav"))
    deliv = tmp_path / "deliv"
    deliv.mkdir()
    artwork(1).resize((500, 333)).save(deliv / "copy.jpg", quality=60)
    scene = artwork(300, (1024, 640))
    scene.paste(artwork(2).resize((420, 280)), (300, 200))
    scene.save(deliv / "pasted.png")
    artwork(301).save(deliv / "original.png")
    (deliv / "excerpt.wav").write_bytes(encode_audio(song[5 * SR: 17 * SR], SR, "wav"))
    (deliv / "other.wav").write_bytes(encode_audio(synth_music(22, seconds=12.0), SR, "wav"))
    (deliv / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    s = Scanner(settings)
    s.add_reference(sorted(refs.iterdir()))
    s.build_index()
    return settings, deliv


def _scan(settings, deliv, monkeypatch, side_by_side: bool) -> dict:
    monkeypatch.setattr(scanning, "SIDE_BY_SIDE", side_by_side)
    return by_name(Scanner(settings).scan([deliv]))


def test_side_by_side_gives_the_results_of_one_after_another(mixed, monkeypatch):
    settings, deliv = mixed
    monkeypatch.setattr(LocalDetector, "one_thread", True)  # a lane of its own beside PDQ and the fingerprint
    together, alone = _scan(settings, deliv, monkeypatch, True), _scan(settings, deliv, monkeypatch, False)
    assert together == alone
    verdicts = {name: rec["verdict"] for name, rec in together.items()}
    assert verdicts == {"copy.jpg": "block", "pasted.png": "block", "original.png": "pass", "excerpt.wav": "block",
                        "other.wav": "pass", "broken.png": "error"}, verdicts
    assert {f["detector"] for f in together["pasted.png"]["findings"]} >= {"image.local"}


def test_a_batch_no_detector_reads_is_checked_by_none(tmp_path):
    """Audio in a delivery whose catalog holds images only: no query work for it, and no failure."""
    ws = tmp_path / "ws"
    settings = Settings(catalog=ws / "catalog.db", index_dir=ws / "indexes", model_cache=ws / "models",
                        detectors=("image.pdq", "audio.fingerprint"))
    artwork(1).save(tmp_path / "work.png")
    deliv = tmp_path / "deliv"
    deliv.mkdir()
    (deliv / "music.wav").write_bytes(encode_audio(synth_music(23, seconds=8.0), SR, "wav"))
    s = Scanner(settings)
    s.add_reference([tmp_path / "work.png"])
    (rec,) = [r.to_dict() for r in s.scan([deliv])]
    assert rec["verdict"] == "pass" and rec["error"] is None and rec["findings"] == []


def test_the_first_failing_detector_names_the_error(mixed, monkeypatch):
    settings, deliv = mixed
    s = Scanner(settings)
    target = Image.open(deliv / "copy.jpg").convert("RGB").tobytes()
    started = []
    for name, delay in (("image.pdq", 0.3), ("image.local", 0.0)):  # the later detector fails first
        det, real = s.detectors[name], s.detectors[name].embed_queries

        def flaky(images, name=name, delay=delay, real=real):
            started.append(name)
            time.sleep(delay)
            if any(img.convert("RGB").tobytes() == target for img in images):
                raise RuntimeError(f"simulated {name} failure")
            return real(images)

        monkeypatch.setattr(det, "embed_queries", flaky)
    monkeypatch.setattr(LocalDetector, "one_thread", True)  # beside PDQ, so it fails first in time
    res = by_name(s.scan([deliv]))
    assert res["copy.jpg"]["verdict"] == "error"
    assert res["copy.jpg"]["error"].startswith("image.pdq could not check this asset")
    assert res["pasted.png"]["verdict"] == "block"  # the rest of the batch is still checked


class _FakeTorch:
    def __init__(self, n: int):
        self.n = n

    def get_num_threads(self) -> int:
        return self.n

    def set_num_threads(self, n: int) -> None:
        self.n = n


def test_two_blocks_at_once_leave_torch_at_its_count():
    torch = _FakeTorch(4)
    inside = threading.Event()
    seen = []

    def first():
        with torch_threads(torch, 1):
            inside.set()
            time.sleep(0.2)  # the other block starts meanwhile
            seen.append(torch.n)

    def second():
        inside.wait()
        with torch_threads(torch, 2):
            seen.append(torch.n)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert seen == [1, 2] and torch.n == 4


def test_at_most_never_raises_the_count():
    torch = _FakeTorch(2)
    with torch_threads(torch, 8):
        assert torch.n == 2
    with torch_threads(torch, 0):
        assert torch.n == 1
    assert torch.n == 2


@pytest.fixture
def ctrl_c():
    """SIGINT raising KeyboardInterrupt in the main thread, as Ctrl-C in a terminal does, for the test's duration.

    A process started in the background by a shell without job control (``cmd &`` in a script, some CI
    runners) inherits SIGINT ignored, and Python then installs no handler of its own: the signal this test
    sends would vanish and the scan run to its end ("DID NOT RAISE KeyboardInterrupt" under ``.ci/run`` run
    that way). That is POSIX's rule for background jobs, not the scan's doing, so the test sets the
    terminal's behaviour itself instead of depending on how pytest was started."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def test_an_interrupt_starts_no_further_detector(mixed, monkeypatch, ctrl_c):
    settings, deliv = mixed
    s = Scanner(settings)
    ran = []
    for name in ("image.pdq", "image.local", "audio.fingerprint"):  # one lane: one after another
        det, real = s.detectors[name], s.detectors[name].embed_queries

        def watched(images, name=name, real=real):
            ran.append(name)
            if name == "image.pdq":  # Ctrl-C while the first detector runs
                signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
                time.sleep(0.5)
            return real(images)

        monkeypatch.setattr(det, "embed_queries", watched)
    with pytest.raises(KeyboardInterrupt):
        list(s.scan([deliv]))
    assert ran == ["image.pdq"]


class _Probe:
    """A detector stand-in for ``_run_lane``: records its call, and can set the lane's stop event."""

    def __init__(self, name: str, log: list, stop: threading.Event | None = None):
        self.name, self.log, self.stop = name, log, stop

    def embed_queries(self, media):
        self.log.append(self.name)
        if self.stop is not None:
            self.stop.set()  # what the scan does when Ctrl-C reaches it while this one runs
        return [object() for _ in media]

    def search(self, index, queries):
        return [[] for _ in queries]


def test_a_lane_starts_no_detector_once_stopped():
    log, stop = [], threading.Event()
    lane = [(_Probe("first", log, stop), None, []), (_Probe("second", log), None, [])]
    with pytest.raises(KeyboardInterrupt):
        scanning._run_lane(lane, stop)
    assert log == ["first"]
    log.clear()
    assert len(scanning._run_lane([(_Probe("a", log), None, []), (_Probe("b", log), None, [])],
                                  threading.Event())) == 2 and log == ["a", "b"]
