"""Decode-ahead pipeline (scanner/media/prefetch.py): same results as the sequential loop."""

from __future__ import annotations

import dataclasses
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from PIL import Image

import scanner.media.prefetch as prefetch_mod
from scanner.api import Scanner
from scanner.media.prefetch import prefetch
from scanner.testing.fixtures import artwork


def _batches(n: int, size: int) -> list[list[int]]:
    return [list(range(i, min(n, i + size))) for i in range(0, n, size)]


@pytest.mark.parametrize("depth", [0, 1, 3])
def test_items_keep_their_order(depth):
    with ThreadPoolExecutor(4) as pool:
        out = list(prefetch(_batches(53, 10), lambda x: (time.sleep(0.001 * (x % 3)), x * x)[1], pool, depth))
    assert [x for b, _ in out for x in b] == list(range(53))
    assert all(d == [x * x for x in b] for b, d in out)
    if depth == 0:  # the sequential loop keeps the given batches
        assert [b for b, _ in out] == _batches(53, 10)
    else:  # first batches small, then the given size
        assert [len(b) for b, _ in out] == [4, 8, 10, 10, 10, 10, 1]


def test_decoding_runs_ahead_while_the_consumer_works_but_stays_bounded():
    started: list[int] = []
    lock = threading.Lock()

    def decode(x: int) -> int:
        with lock:
            started.append(x)
        return x

    with ThreadPoolExecutor(2) as pool:
        gen = prefetch(_batches(40, 4), decode, pool, depth=1)
        next(gen)  # batch 0 (4 items) handed out; the consumer now "searches" it
        time.sleep(0.3)
        with lock:
            ahead = max(started)
        # batch 1 (8 items) is decoded and waiting, batch 2 (4) decoded and blocked on the full queue
        assert 4 <= ahead <= 15
        gen.close()


def test_a_decode_error_comes_out_at_its_batch():
    def decode(x: int) -> int:
        if x == 7:
            raise RuntimeError("bad item 7")
        return x

    seen = []
    with ThreadPoolExecutor(2) as pool:
        with pytest.raises(RuntimeError, match="bad item 7"):
            for batch, _ in prefetch(_batches(20, 3), decode, pool, depth=2):
                seen.append(batch)
    assert [x for b in seen for x in b] == list(range(6))  # batches 0 and 1; item 7 is in batch 2


def test_stopping_early_stops_the_background_thread():
    with ThreadPoolExecutor(2) as pool:
        gen = prefetch(_batches(1000, 2), lambda x: x, pool, depth=2)
        next(gen)
        gen.close()
    assert not any(t.name == "scanner-prefetch" for t in threading.enumerate())


def _corpus(tmp_path):
    works = tmp_path / "works"
    deliv = tmp_path / "deliv"
    works.mkdir()
    deliv.mkdir()
    paths = []
    for i in range(4):
        p = works / f"work_{i}.jpg"
        artwork(100 + i).save(p, quality=90)
        paths.append(p)
    for i in range(11):  # copies, originals, a broken file: two batches
        img = Image.open(paths[i % 4]).resize((300, 200)) if i % 2 else artwork(300 + i)
        img.save(deliv / f"asset_{i:02d}.jpg", quality=70)
    (deliv / "asset_99.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return paths, deliv


def _records(settings, works, deliv) -> list[dict]:
    s = Scanner(settings)
    s.add_reference(works)
    s.build_index()
    return [r.to_dict() for r in s.scan([deliv])]


def test_scan_results_identical_with_and_without_the_pipeline(settings, tmp_path, monkeypatch):
    works, deliv = _corpus(tmp_path)
    settings = dataclasses.replace(settings, batch_size=8)  # sequential: 8 + 4; pipeline: 4 + 8
    monkeypatch.setattr(prefetch_mod, "DEPTH", 0)
    sequential = _records(settings, works, deliv)
    monkeypatch.setattr(prefetch_mod, "DEPTH", 2)
    piped = _records(settings, works, deliv)
    assert [r["path"] for r in sequential] == sorted(r["path"] for r in sequential)  # walk order
    assert {r["verdict"] for r in sequential} >= {"block", "pass", "error"}
    assert piped == sequential
