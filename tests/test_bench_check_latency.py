"""benchmarks/check_latency.py: the ways it compares set the detectors up as they say."""

from __future__ import annotations

from types import SimpleNamespace

from benchmarks import check_latency
from scanner import scanning


class _Scanner:
    """A stand-in with one image.face: records the face attributes at check time."""

    def __init__(self):
        self.face = SimpleNamespace(grey_queries=None, fine_pixels=None)
        self.detectors = {"image.face": self.face}
        self.seen = []

    def check(self, query):
        self.seen.append((scanning.SIDE_BY_SIDE, self.face.grey_queries, self.face.fine_pixels))
        return SimpleNamespace(verdict=SimpleNamespace(value="pass"))


def test_large_frames_get_the_not_enlarged_face_way_and_each_way_sets_every_attribute():
    assert check_latency.ways_for((1280, 720)) is check_latency.WAYS
    ways = check_latency.ways_for((1920, 1080))
    assert set(ways) - set(check_latency.WAYS) == {"side by side, face pass not enlarged"}
    shipped = scanning.SIDE_BY_SIDE
    try:
        s = _Scanner()
        for name in ("side by side, face pass not enlarged", "side by side, colour HOG", "one after another"):
            check_latency.timed(s, None, ways[name])
    finally:
        scanning.SIDE_BY_SIDE = shipped
    full = check_latency.FINE_PIXELS
    assert s.seen == [(True, True, 0), (True, False, full), (False, True, full)]
