"""benchmarks/check_latency.py: the ways it compares set the detectors up as they say."""

from __future__ import annotations

from types import SimpleNamespace

from benchmarks import check_latency
from scanner import scanning


class _Scanner:
    """A stand-in with one image.face and one image.local: records their attributes at check time."""

    def __init__(self):
        self.face = SimpleNamespace(grey_queries=None, fine_pixels=None)
        self.local = SimpleNamespace(skip_unverifiable=None)
        self.detectors = {"image.face": self.face, "image.local": self.local}
        self.seen = []

    def check(self, query):
        self.seen.append((scanning.SIDE_BY_SIDE, self.face.grey_queries, self.face.fine_pixels,
                          self.local.skip_unverifiable))
        return SimpleNamespace(verdict=SimpleNamespace(value="pass"))


def test_large_frames_get_the_not_enlarged_face_way_and_each_way_sets_every_attribute():
    assert check_latency.ways_for((1280, 720)) is check_latency.WAYS
    ways = check_latency.ways_for((1920, 1080))
    assert set(ways) - set(check_latency.WAYS) == {"side by side, face pass not enlarged"}
    shipped = scanning.SIDE_BY_SIDE
    try:
        s = _Scanner()
        for name in ("side by side, face pass not enlarged", "side by side, colour HOG", "one after another",
                     "side by side, text for every candidate", "side by side"):
            check_latency.timed(s, None, ways[name])
    finally:
        scanning.SIDE_BY_SIDE = shipped
    full = check_latency.FINE_PIXELS
    assert s.seen == [(True, True, 0, True), (True, False, full, True), (False, True, full, True),
                      (True, True, full, False), (True, True, full, True)]


def test_ways_can_be_chosen_by_name():
    assert list(check_latency.chosen(check_latency.WAYS, ["side by side, ORT spinning", "side by side"])) == \
        ["side by side", "side by side, ORT spinning"]
    assert check_latency.chosen(check_latency.WAYS, None) is check_latency.WAYS
