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
    index = det.new_index(400_000)
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
