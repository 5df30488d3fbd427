"""The live index build picks the index type by size, and an approximate index round-trips."""

from __future__ import annotations

import numpy as np

from scanner.detectors.base import Embedding
from scanner.detectors.clip import ClipDetector
from scanner.index.choose import choose_index
from scanner.index.store import IndexStore


def test_vector_detector_sizes_its_index(settings):
    det = ClipDetector(settings)
    assert type(det.new_index(10)).__name__ == "FloatIndex"  # exact below the bound
    big = choose_index(1_000_000, det.dim, det.metric)
    assert big.kind != "flat"
    assert type(det.new_index(1_000_000)).__name__ != "FloatIndex"


def test_approximate_index_saves_and_loads_through_the_detector(settings, tmp_path):
    det = ClipDetector(settings)
    index = det.new_index(400_000)  # pq4-sq8: trains on its first add
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(3000, det.dim)).astype(np.float32)
    index.add(np.arange(3000), vectors)
    store = IndexStore(tmp_path / "idx")
    store.save("image.clip", index, det.model_id, det.weights_sha256, {}, det.params)
    loaded, manifest = store.load("image.clip", det.model_id, det.weights_sha256, det.dim, det.metric,
                                  det.load_index, det.params)
    assert manifest.index_type == index.kind and type(loaded) is type(index)
    hits_a = det.search(index, [Embedding(vectors[:5])])
    hits_b = det.search(loaded, [Embedding(vectors[:5])])
    assert [[h.ref_id for h in q] for q in hits_a] == [[h.ref_id for h in q] for q in hits_b]
    assert hits_a[0][0].ref_id == 0


def test_a_small_memory_budget_gives_a_compressed_index(settings):
    from scanner.index.choose import flat_bytes, ivf_nlist, ivfsq_bytes

    det = ClipDetector(settings)
    rows = 50_000  # exact below the size bound, but the floats do not fit this budget
    assert type(det.new_index(rows)).__name__ == "FloatIndex"
    small = det.new_index(rows, memory_bytes=flat_bytes(rows, det.dim, det.metric) // 2)
    assert type(small).__name__ != "FloatIndex" and small.params["factory"]
    no_sq8 = ivfsq_bytes(rows, det.dim, ivf_nlist(rows)) - 1
    tiny = det.new_index(rows, memory_bytes=no_sq8)  # not even 8-bit vectors fit: PQ codes
    assert type(tiny).__name__ == "IVFPQIndex"


def test_the_settings_budget_reaches_every_new_index(settings, works, monkeypatch):
    """``Settings.index_memory_mb`` is what ``new_index`` plans within when the scanner (re)builds indexes."""
    from dataclasses import replace

    from scanner.api import Scanner
    from scanner.detectors.base import VectorDetector

    seen = []
    plain = VectorDetector.new_index

    def spy(self, expected_rows=0, memory_bytes=None):
        seen.append(memory_bytes)
        return plain(self, expected_rows, memory_bytes)

    monkeypatch.setattr(VectorDetector, "new_index", spy)
    s = Scanner(replace(settings, index_memory_mb=3))
    s.add_reference(works)
    s.build_index(rebuild=True)
    assert seen and set(seen) == {3 * 1024 * 1024}
    seen.clear()
    Scanner(replace(settings, index_memory_mb=0)).build_index(rebuild=True)  # 0: no budget
    assert seen and set(seen) == {None}
