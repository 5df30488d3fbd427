"""FloatIndex / BinaryIndex over FAISS and the atomic, manifest-checked IndexStore."""

from __future__ import annotations

import json
import os
from datetime import datetime

import numpy as np
import pytest

from scanner.errors import IndexCorruptError, IndexMismatchError
from scanner.index import BinaryIndex, FloatIndex, IndexStore, Manifest
from scanner.index.store import MANIFEST
from scanner.types import Metric

W_SHA = "a" * 64
OTHER_SHA = "b" * 64


def _float_index(n: int = 20, dim: int = 16, seed: int = 0) -> tuple[FloatIndex, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    vecs = rng.normal(size=(n, dim)).astype(np.float32)
    ids = np.arange(100, 100 + n, dtype=np.int64)
    idx = FloatIndex(dim)
    idx.add(ids, vecs)
    return idx, ids, vecs


def _binary_index(n: int = 20, bits: int = 256, seed: int = 0) -> tuple[BinaryIndex, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    hashes = rng.integers(0, 256, size=(n, bits // 8), dtype=np.uint8)
    ids = np.arange(1, n + 1, dtype=np.int64)
    idx = BinaryIndex(bits)
    idx.add(ids, hashes)
    return idx, ids, hashes


def _float_reader(dim: int = 16):
    return lambda data: FloatIndex.from_bytes(data, dim)


def _binary_reader(bits: int = 256):
    return lambda data: BinaryIndex.from_bytes(data, bits)


def _hamming(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.unpackbits(np.bitwise_xor(a, b)).sum())


# --------------------------------------------------------------------------- in-memory indexes


def test_float_index_finds_itself_with_cosine_one():
    idx, ids, vecs = _float_index()
    scores, got = idx.search(vecs[:5], 3)
    assert got.shape == (5, 3) and scores.shape == (5, 3)
    assert list(got[:, 0]) == list(ids[:5])
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-5)
    # scores are sorted best first
    assert np.all(np.diff(scores, axis=1) <= 1e-6)


def test_float_index_is_cosine_not_dot_product():
    idx = FloatIndex(4)
    idx.add([1, 2], np.array([[1, 0, 0, 0], [10, 10, 0, 0]], np.float32))
    scores, got = idx.search(np.array([[100, 0, 0, 0]], np.float32), 2)
    assert got[0, 0] == 1
    np.testing.assert_allclose(scores[0], [1.0, np.sqrt(0.5)], atol=1e-5)


def test_binary_index_exact_hamming_distances():
    idx, ids, hashes = _binary_index()
    q = hashes[3].copy()
    q[0] ^= 0b00000111  # flip 3 bits
    dist, got = idx.search(q, 2)
    assert got[0, 0] == ids[3]
    assert dist[0, 0] == 3
    assert dist[0, 1] == _hamming(q, hashes[got[0, 1] - 1])


def test_binary_dim_must_be_multiple_of_8():
    with pytest.raises(ValueError):
        BinaryIndex(250)


@pytest.mark.parametrize("kind", ["float", "binary"])
def test_readding_an_id_adds_rows_and_remove_first_replaces(kind):
    if kind == "float":
        idx = FloatIndex(4)
        a, b = np.array([[1, 0, 0, 0]], np.float32), np.array([[0, 1, 0, 0]], np.float32)
    else:
        idx = BinaryIndex(64)
        a, b = np.zeros((1, 8), np.uint8), np.full((1, 8), 255, np.uint8)
    idx.add([7], a)
    idx.add([8], a)
    idx.add([7], b)  # a second row owned by reference 7
    assert idx.ids().tolist() == [7, 8]  # distinct ids, sorted
    assert len(idx) == 2
    _, got = idx.search(b, 1)
    assert got[0, 0] == 7
    _, got = idx.search(a, 3)
    assert set(got[0, :2].tolist()) == {7, 8}  # 7's first row is still there
    assert got[0, 2] == 7
    # replacing = remove every row of the id, then add
    assert idx.remove([7]) == 2
    idx.add([7], b)
    _, got = idx.search(a, 2)
    assert got[0].tolist() == [8, 7]
    assert len(idx) == 2


@pytest.mark.parametrize("kind", ["float", "binary"])
def test_one_id_many_rows_in_one_add(kind):
    if kind == "float":
        idx, rows = FloatIndex(8), np.random.default_rng(3).normal(size=(5, 8)).astype(np.float32)
    else:
        idx, rows = BinaryIndex(64), np.random.default_rng(3).integers(0, 256, (5, 8), dtype=np.uint8)
    idx.add([1, 1, 1, 2, 2], rows)
    assert len(idx) == 2
    _, got = idx.search(rows[4], 5)
    assert sorted(got[0].tolist()) == [1, 1, 1, 2, 2]
    assert idx.remove([1]) == 3
    assert idx.ids().tolist() == [2]


@pytest.mark.parametrize("kind", ["float", "binary"])
def test_remove_counts_and_forgets(kind):
    idx, ids, vecs = _float_index() if kind == "float" else _binary_index()
    assert idx.remove(np.array([ids[0], ids[1], 999_999])) == 2
    assert len(idx) == len(ids) - 2
    assert idx.remove([ids[0]]) == 0
    _, got = idx.search(vecs[0], 5)
    assert ids[0] not in got[0] and ids[1] not in got[0]


def test_search_on_empty_indexes():
    scores, got = FloatIndex(8).search(np.ones((2, 8), np.float32), 3)
    assert got.shape == (2, 3) and (got == -1).all()
    assert scores.shape == (2, 3)
    dist, got = BinaryIndex(64).search(np.zeros((1, 8), np.uint8), 4)
    assert (got == -1).all()
    assert (dist == 64).all()  # no neighbour is as far as it gets


def test_search_k_larger_than_count_pads_with_minus_one():
    idx, ids, vecs = _float_index(n=3)
    _, got = idx.search(vecs[0], 5)
    assert sorted(got[0, :3].tolist()) == sorted(ids.tolist())
    assert (got[0, 3:] == -1).all()


def test_remove_everything_then_search():
    idx, ids, vecs = _binary_index(n=4)
    idx.remove(ids)
    assert len(idx) == 0
    _, got = idx.search(vecs[0], 2)
    assert (got == -1).all()


def test_index_types_record_metric_and_kind():
    assert BinaryIndex(256).metric is Metric.HAMMING and BinaryIndex(256).dim == 256
    assert FloatIndex(32).metric is Metric.COSINE and FloatIndex(32).dim == 32
    assert BinaryIndex(256).kind != FloatIndex(32).kind


# --------------------------------------------------------------------------- IndexStore


def test_load_without_index_returns_none(tmp_path):
    store = IndexStore(tmp_path / "idx")
    assert store.manifest("image.clip") is None
    assert store.load("image.clip", "m", W_SHA, 16, Metric.COSINE, _float_reader(16)) is None


def test_float_round_trip_identical_search(tmp_path):
    idx, ids, vecs = _float_index(n=50, dim=32)
    store = IndexStore(tmp_path)
    store.save("image.clip", idx, "clip-x", W_SHA)
    loaded, manifest = store.load("image.clip", "clip-x", W_SHA, 32, Metric.COSINE, _float_reader(32))
    assert isinstance(loaded, FloatIndex)
    assert sorted(loaded.ids().tolist()) == sorted(ids.tolist())
    q = np.random.default_rng(5).normal(size=(7, 32)).astype(np.float32)
    s1, i1 = idx.search(q, 10)
    s2, i2 = loaded.search(q, 10)
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_array_equal(s1, s2)
    assert manifest.count == 50


def test_binary_round_trip_identical_search(tmp_path):
    idx, ids, hashes = _binary_index(n=40)
    store = IndexStore(tmp_path)
    store.save("image.pdq", idx, "pdq", "")
    loaded, manifest = store.load("image.pdq", "pdq", "", 256, Metric.HAMMING, _binary_reader(256))
    assert isinstance(loaded, BinaryIndex)
    q = np.random.default_rng(9).integers(0, 256, size=(6, 32), dtype=np.uint8)
    d1, i1 = idx.search(q, 8)
    d2, i2 = loaded.search(q, 8)
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_array_equal(d1, d2)
    # the loaded index is still mutable: add/remove work after a round trip
    loaded.add([1], hashes[5:6])
    assert len(loaded) == 40
    assert loaded.remove([2, 3]) == 2


def test_manifest_fields(tmp_path):
    idx, _, _ = _float_index(n=12, dim=16)
    store = IndexStore(tmp_path)
    m = store.save("image.clip", idx, "clip-x", W_SHA, skipped={"5": "flat image"})
    on_disk = json.loads((tmp_path / "image.clip" / MANIFEST).read_text())
    for key in ("detector", "model", "weights_sha256", "dim", "metric", "count", "checksum", "created"):
        assert key in on_disk, key
    assert on_disk["detector"] == "image.clip"
    assert on_disk["model"] == "clip-x"
    assert on_disk["weights_sha256"] == W_SHA
    assert on_disk["dim"] == 16
    assert on_disk["metric"] == "cosine"
    assert on_disk["count"] == 12
    assert len(on_disk["checksum"]) == 64
    assert on_disk["skipped"] == {"5": "flat image"}
    assert datetime.fromisoformat(on_disk["created"]).tzinfo is not None
    assert (tmp_path / "image.clip" / on_disk["file"]).is_file()
    assert store.manifest("image.clip") == m
    assert isinstance(m, Manifest)


@pytest.mark.parametrize(
    "model, sha, dim, metric, detector, what",
    [
        ("other-model", W_SHA, 16, Metric.COSINE, "image.clip", "model"),
        ("clip-x", OTHER_SHA, 16, Metric.COSINE, "image.clip", "weights"),
        ("clip-x", W_SHA, 32, Metric.COSINE, "image.clip", "dimension"),
        ("clip-x", W_SHA, 16, Metric.HAMMING, "image.clip", "metric"),
    ],
)
def test_load_refuses_mismatch(tmp_path, model, sha, dim, metric, detector, what):
    idx, _, _ = _float_index(dim=16)
    store = IndexStore(tmp_path)
    store.save("image.clip", idx, "clip-x", W_SHA)
    with pytest.raises(IndexMismatchError) as err:
        store.load(detector, model, sha, dim, metric, _float_reader(dim))
    msg = str(err.value)
    assert "--rebuild" in msg
    assert what in msg


def test_load_refuses_manifest_of_another_detector(tmp_path):
    idx, _, _ = _float_index(dim=16)
    store = IndexStore(tmp_path)
    store.save("image.clip", idx, "clip-x", W_SHA)
    # someone copied the clip folder over the pdq one
    (tmp_path / "image.pdq").mkdir()
    for f in (tmp_path / "image.clip").iterdir():
        (tmp_path / "image.pdq" / f.name).write_bytes(f.read_bytes())
    with pytest.raises(IndexMismatchError, match="--rebuild"):
        store.load("image.pdq", "clip-x", W_SHA, 16, Metric.COSINE, _float_reader(16))


def test_load_refuses_other_format_version(tmp_path):
    idx, _, _ = _float_index(dim=16)
    store = IndexStore(tmp_path)
    store.save("image.clip", idx, "clip-x", W_SHA)
    mpath = tmp_path / "image.clip" / MANIFEST
    data = json.loads(mpath.read_text())
    data["format_version"] = 999
    mpath.write_text(json.dumps(data))
    with pytest.raises(IndexMismatchError, match="format version"):
        store.load("image.clip", "clip-x", W_SHA, 16, Metric.COSINE, _float_reader(16))


def test_flipped_bytes_in_data_file_is_corrupt(tmp_path):
    idx, _, _ = _float_index()
    store = IndexStore(tmp_path)
    m = store.save("image.clip", idx, "clip-x", W_SHA)
    data_file = tmp_path / "image.clip" / m.file
    raw = bytearray(data_file.read_bytes())
    mid = len(raw) // 2
    raw[mid] ^= 0xFF
    raw[mid + 1] ^= 0xFF
    data_file.write_bytes(bytes(raw))
    with pytest.raises(IndexCorruptError) as err:
        store.load("image.clip", "clip-x", W_SHA, 16, Metric.COSINE, _float_reader(16))
    assert "--rebuild" in str(err.value)


def test_truncated_data_file_is_corrupt(tmp_path):
    idx, _, _ = _binary_index()
    store = IndexStore(tmp_path)
    m = store.save("image.pdq", idx, "pdq", "")
    data_file = tmp_path / "image.pdq" / m.file
    data_file.write_bytes(data_file.read_bytes()[:100])
    with pytest.raises(IndexCorruptError):
        store.load("image.pdq", "pdq", "", 256, Metric.HAMMING, _binary_reader(256))


def test_missing_data_file_is_corrupt(tmp_path):
    idx, _, _ = _binary_index()
    store = IndexStore(tmp_path)
    m = store.save("image.pdq", idx, "pdq", "")
    (tmp_path / "image.pdq" / m.file).unlink()
    with pytest.raises(IndexCorruptError, match="missing"):
        store.load("image.pdq", "pdq", "", 256, Metric.HAMMING, _binary_reader(256))


@pytest.mark.parametrize("content", ["{not json", "[]", '{"detector": "image.pdq"}', ""])
def test_unreadable_manifest_is_corrupt(tmp_path, content):
    folder = tmp_path / "image.pdq"
    folder.mkdir()
    (folder / MANIFEST).write_text(content)
    store = IndexStore(tmp_path)
    with pytest.raises(IndexCorruptError, match="--rebuild"):
        store.manifest("image.pdq")
    with pytest.raises(IndexCorruptError):
        store.load("image.pdq", "pdq", "", 256, Metric.HAMMING, _binary_reader(256))


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_crash_during_manifest_write_keeps_previous_index(tmp_path, monkeypatch):
    store = IndexStore(tmp_path)
    old_idx, old_ids, old_vecs = _float_index(n=10, seed=1)
    old_m = store.save("image.clip", old_idx, "clip-x", W_SHA)
    folder = tmp_path / "image.clip"
    before = _snapshot(folder)

    new_idx, _, _ = _float_index(n=30, seed=2)
    real_replace = os.replace

    def crashing_replace(src, dst, *a, **kw):
        if os.path.basename(os.fspath(dst)) == MANIFEST:
            raise OSError(28, "No space left on device (simulated)")
        return real_replace(src, dst, *a, **kw)

    monkeypatch.setattr(os, "replace", crashing_replace)
    with pytest.raises(OSError, match="simulated"):
        store.save("image.clip", new_idx, "clip-x", W_SHA)
    monkeypatch.undo()

    # manifest and old data file untouched; no temp files left behind
    after = _snapshot(folder)
    assert after[MANIFEST] == before[MANIFEST]
    assert after[old_m.file] == before[old_m.file]
    assert not [n for n in after if n.endswith(".tmp")]

    loaded, m = store.load("image.clip", "clip-x", W_SHA, 16, Metric.COSINE, _float_reader(16))
    assert m == old_m
    assert m.count == 10
    s1, i1 = old_idx.search(old_vecs, 3)
    s2, i2 = loaded.search(old_vecs, 3)
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_array_equal(s1, s2)

    # the next successful save commits and cleans up the orphan left by the crash
    m2 = store.save("image.clip", new_idx, "clip-x", W_SHA)
    assert sorted(p.name for p in folder.glob("index-*")) == [m2.file]
    assert store.load("image.clip", "clip-x", W_SHA, 16, Metric.COSINE, _float_reader(16))[1].count == 30


def test_crash_during_data_write_keeps_previous_index(tmp_path, monkeypatch):
    store = IndexStore(tmp_path)
    old_idx, _, _ = _binary_index(n=5)
    old_m = store.save("image.pdq", old_idx, "pdq", "")
    folder = tmp_path / "image.pdq"
    before = _snapshot(folder)

    real_replace = os.replace

    def crashing_replace(src, dst, *a, **kw):
        if os.path.basename(os.fspath(dst)).startswith("index-"):
            raise OSError(5, "I/O error (simulated)")
        return real_replace(src, dst, *a, **kw)

    monkeypatch.setattr(os, "replace", crashing_replace)
    with pytest.raises(OSError):
        store.save("image.pdq", _binary_index(n=9, seed=3)[0], "pdq", "")
    monkeypatch.undo()
    assert _snapshot(folder) == before
    assert store.load("image.pdq", "pdq", "", 256, Metric.HAMMING, _binary_reader(256))[1] == old_m


def test_successful_save_removes_old_data_files(tmp_path):
    store = IndexStore(tmp_path)
    folder = tmp_path / "image.pdq"
    files = set()
    for seed in range(3):
        m = store.save("image.pdq", _binary_index(n=5 + seed, seed=seed)[0], "pdq", "")
        files.add(m.file)
        assert [p.name for p in folder.glob("index-*")] == [m.file]
    assert len(files) == 3  # different contents, different file names
    assert sorted(p.name for p in folder.iterdir()) == sorted([MANIFEST, m.file])


def test_saving_same_index_twice_keeps_it_loadable(tmp_path):
    store = IndexStore(tmp_path)
    idx, _, _ = _binary_index()
    m1 = store.save("image.pdq", idx, "pdq", "")
    m2 = store.save("image.pdq", idx, "pdq", "")
    assert m1.file == m2.file and m1.checksum == m2.checksum
    assert store.load("image.pdq", "pdq", "", 256, Metric.HAMMING, _binary_reader(256))[1].count == 20


def test_detectors_have_separate_folders(tmp_path):
    store = IndexStore(tmp_path)
    store.save("image.pdq", _binary_index()[0], "pdq", "")
    store.save("image.clip", _float_index()[0], "clip-x", W_SHA)
    assert store.load("image.pdq", "pdq", "", 256, Metric.HAMMING, _binary_reader(256))[1].count == 20
    assert store.load("image.clip", "clip-x", W_SHA, 16, Metric.COSINE, _float_reader(16))[1].count == 20
    assert store.folder("image.pdq") != store.folder("image.clip")


def test_params_recorded_and_checked(tmp_path):
    store = IndexStore(tmp_path)
    params = {"min_quality": 50, "orientations": 8}
    m = store.save("image.pdq", _binary_index()[0], "pdq", "", params=params)
    assert m.params == params
    assert json.loads((tmp_path / "image.pdq" / MANIFEST).read_text())["params"] == params
    loaded = store.load("image.pdq", "pdq", "", 256, Metric.HAMMING, _binary_reader(), params=params)
    assert loaded[1].params == params
    with pytest.raises(IndexMismatchError) as err:
        store.load("image.pdq", "pdq", "", 256, Metric.HAMMING, _binary_reader(), params={"min_quality": 70,
                                                                                          "orientations": 8})
    assert "parameters" in str(err.value) and "--rebuild" in str(err.value)
    with pytest.raises(IndexMismatchError):
        store.load("image.pdq", "pdq", "", 256, Metric.HAMMING, _binary_reader())  # running with no params


def test_index_without_params_loads_with_none(tmp_path):
    store = IndexStore(tmp_path)
    store.save("image.pdq", _binary_index()[0], "pdq", "")
    assert store.load("image.pdq", "pdq", "", 256, Metric.HAMMING, _binary_reader()) is not None
    assert store.load("image.pdq", "pdq", "", 256, Metric.HAMMING, _binary_reader(), params={}) is not None


def test_params_survive_json_round_trip(tmp_path):
    """Params are compared after a trip through JSON: a tuple value must still match itself."""
    store = IndexStore(tmp_path)
    params = {"sizes": (64, 128), "mode": "grey"}
    store.save("image.x", _binary_index()[0], "x", "", params=params)
    loaded = store.load("image.x", "x", "", 256, Metric.HAMMING, _binary_reader(), params=params)
    assert loaded is not None


def test_reader_gets_exactly_the_saved_bytes(tmp_path):
    store = IndexStore(tmp_path)
    idx = _binary_index()[0]
    store.save("image.pdq", idx, "pdq", "")
    seen = []

    def reader(data):
        seen.append(data)
        return BinaryIndex.from_bytes(data, 256)

    store.load("image.pdq", "pdq", "", 256, Metric.HAMMING, reader)
    assert seen == [idx.to_bytes()]


# --------------------------------------------------------------------------- one container, format 2


def test_data_file_is_named_by_family_and_is_a_container(tmp_path):
    from scanner.index import container

    store = IndexStore(tmp_path)
    m = store.save("image.pdq", _binary_index()[0], "pdq", "")
    assert m.family == "faiss" and m.file.endswith(".faiss.scn") and m.format_version == 2
    data = (tmp_path / "image.pdq" / m.file).read_bytes()
    box = container.unpack(data)
    assert data[:8] == b"SCNIDX02" and box.family == "faiss" and box.header["kind"] == "flat"
    assert [s for s in box.sections] == ["faiss"]


def test_format_1_store_is_refused_with_a_rebuild_hint(tmp_path):
    store = IndexStore(tmp_path)
    m = store.save("image.pdq", _binary_index()[0], "pdq", "")
    mpath = tmp_path / "image.pdq" / MANIFEST
    data = json.loads(mpath.read_text())
    data["format_version"] = 1
    del data["family"]  # format 1 manifests had no family
    mpath.write_text(json.dumps(data))
    with pytest.raises(IndexMismatchError, match=r"format version 1 \(an older index format\).*--rebuild"):
        store.load("image.pdq", "pdq", "", 256, Metric.HAMMING, _binary_reader(256))
    # a rebuild writes format 2 and removes the format-1 data file
    (tmp_path / "image.pdq" / "index-0123456789abcdef.faiss").write_bytes(b"IBM2old")
    m2 = store.save("image.pdq", _binary_index()[0], "pdq", "")
    assert sorted(p.name for p in (tmp_path / "image.pdq").glob("index-*")) == [m2.file] == [m.file]


@pytest.mark.parametrize("lead", [b"SCNIDX01", b"SCANLOC1", b"PK\x03\x04", b"IxM2", b"IBM2"])
def test_older_byte_formats_are_refused_with_a_rebuild_hint(lead):
    from scanner.index import container

    with pytest.raises(IndexMismatchError, match="older format.*--rebuild"):
        container.unpack(lead + bytes(64))
    with pytest.raises(IndexMismatchError, match="--rebuild"):
        BinaryIndex.from_bytes(lead + bytes(64), 256)


def test_container_refuses_another_family_and_damaged_tables():
    from scanner.index import container

    blob = container.pack("landmark", 3, {"rows": 2}, {"a": b"12", "b": b"345"})
    box = container.unpack(blob, "landmark", 3)
    assert bytes(box.section("b")) == b"345" and box.header == {"rows": 2}
    with pytest.raises(IndexMismatchError, match="not a faiss index"):
        container.unpack(blob, "faiss")
    with pytest.raises(IndexMismatchError, match="format 3"):
        container.unpack(blob, "landmark", 4)
    for bad in (blob + b"x", blob[:-1], blob.replace(b'"offset":2', b'"offset":1')):
        with pytest.raises(IndexCorruptError):
            container.unpack(bad)
    with pytest.raises(IndexCorruptError, match="no 'c' section"):
        box.section("c")
    assert container.pack("x", 1, {"b": 1, "a": 2}, {}) == container.pack("x", 1, {"a": 2, "b": 1}, {})


def test_range_search_finds_what_a_full_top_k_finds_within_the_radius():
    idx, ids, vecs = _float_index(n=40, dim=16)
    q = vecs[:3] + 0.3 * np.random.default_rng(1).normal(size=(3, 16)).astype(np.float32)
    scores, got = idx.search(q, 40)
    hits = idx.range_search(q, 0.5)
    for row, (s, i) in enumerate(hits.per_query()):
        assert sorted(i.tolist()) == sorted(got[row][scores[row] >= 0.5].tolist())
        assert np.all(s >= 0.5)
    bidx, _, hashes = _binary_index(n=30)
    d, bgot = bidx.search(hashes[:2], 30)
    bhits = bidx.range_search(hashes[:2], 120)
    for row, (s, i) in enumerate(bhits.per_query()):
        assert sorted(i.tolist()) == sorted(bgot[row][d[row] <= 120].tolist()) and s.dtype == np.int32


def test_landmark_npz_of_format_2_is_refused_and_overlapping_shards_do_not_merge():
    import io

    from scanner.index.landmarks import LandmarkIndex

    buf = io.BytesIO()
    np.savez(buf, format=np.array([2], np.int32), offsets=np.zeros(1, np.uint32))
    with pytest.raises(IndexMismatchError, match="older format.*--rebuild"):
        LandmarkIndex.from_bytes(buf.getvalue())
    a, b = LandmarkIndex(), LandmarkIndex()
    for index, ref in ((a, 1), (b, 1)):
        index.add(np.array([ref, ref]), np.array([[7], [3]]), {"t": [1, 2], "f": [3, 4], "dt": [5, 6]})
    with pytest.raises(ValueError, match="overlap"):
        a.merge(b)
    assert a.rows == 2
    with pytest.raises(ValueError, match="landmark index"):
        a.merge(_float_index()[0])


def test_detectors_check_the_index_family_not_its_class():
    from scanner.index.base import expect_family
    from scanner.index.landmarks import LandmarkIndex

    expect_family(LandmarkIndex(), "landmark", "audio.fingerprint")
    with pytest.raises(IndexMismatchError, match="audio.fingerprint searches a landmark index, not faiss"):
        expect_family(_float_index()[0], "landmark", "audio.fingerprint")
