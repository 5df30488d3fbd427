"""``image.local``: partial copies found by RootSIFT keypoints and a verified homography; its index."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from scanner.config import Settings
from scanner.detectors import create
from scanner.detectors.local import (
    LocalDetector, _features, _grey, mirror_descriptors, polygon_iou,
)
from scanner.errors import IndexCorruptError, IndexMismatchError
from scanner.index import IndexStore
from scanner.index.local_index import LocalIndex, LocalIndexError
from scanner.media.image import decode_image
from scanner.policy.calibration import load_calibration
from scanner.testing.fixtures import artwork

MIN_INLIERS = load_calibration(Settings().calibration).floors("image.local", "rootsift-v1")["min_inliers"]

W, H = 768, 440  # fixture artworks without their "OPUS nnn" title band (shared text would match across works)


def work(seed: int) -> Image.Image:
    return artwork(seed).crop((0, 0, W, H))


def rect(w: float, h: float) -> np.ndarray:
    return np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)


def paste(ref: Image.Image, quad: np.ndarray, size=(1200, 900), bg_seed: int = 7) -> Image.Image:
    """``ref`` warped onto ``quad`` over a blurred noise background."""
    bg = np.random.default_rng(bg_seed).integers(0, 256, (size[1] // 8, size[0] // 8, 3), dtype=np.uint8)
    bg = np.asarray(Image.fromarray(bg).resize(size, Image.Resampling.BICUBIC))
    Hm = cv2.getPerspectiveTransform(rect(*ref.size), quad.astype(np.float32))
    warped = cv2.warpPerspective(np.asarray(ref), Hm, size)
    mask = cv2.warpPerspective(np.full((ref.height, ref.width), 255, np.uint8), Hm, size) > 127
    return Image.fromarray(np.where(mask[..., None], warped, bg))


QUAD = np.array([[300, 200], [760, 250], [730, 560], [320, 590]], np.float64)  # ~15% of a 1200x900 scene


def build(det: LocalDetector, refs: dict[int, Image.Image], index: LocalIndex | None = None) -> LocalIndex:
    index = index if index is not None else det.new_index()
    for ref_id, emb in zip(refs, det.embed_references(list(refs.values()))):
        assert not emb.empty, emb.note
        index.add(np.full(len(emb.vectors), ref_id, np.int64), emb.vectors, emb.extra)
    return index


@pytest.fixture(scope="module")
def det() -> LocalDetector:
    return create("image.local", Settings())


@pytest.fixture(scope="module")
def refs() -> dict[int, Image.Image]:
    return {11: work(1), 12: work(2), 13: work(3)}


@pytest.fixture(scope="module")
def index(det, refs) -> LocalIndex:
    return build(det, refs)


def search_one(det, index, img):
    return det.search(index, det.embed_queries([img]))[0]


def test_pasted_work_found_with_polygon(det, index, refs):
    scene = paste(refs[12], QUAD)
    hits = search_one(det, index, scene)
    assert hits and hits[0].ref_id == 12
    top = hits[0]
    assert top.score == top.extra["inliers"] >= 20
    assert not top.extra["mirrored"]
    assert polygon_iou(top.extra["asset_polygon"], QUAD) > 0.9
    assert polygon_iou(top.extra["ref_polygon"], rect(W, H)) > 0.9
    assert top.extra["ref_visible"] > 0.9
    assert top.extra["asset_size"] == [1200, 900] and top.extra["ref_size"] == [W, H]
    assert all(h.score < top.score / 3 for h in hits[1:])


def test_mirrored_paste_found_where_it_is(det, index, refs):
    scene = paste(ImageOps.mirror(refs[13]), QUAD)
    hits = search_one(det, index, scene)
    assert hits and hits[0].ref_id == 13 and hits[0].extra["mirrored"]
    assert polygon_iou(hits[0].extra["asset_polygon"], QUAD) > 0.85


def test_tight_crop_reports_visible_share(det, index, refs):
    x0, y0, x1, y1 = 150, 60, 150 + 420, 60 + 330  # ~41% of the work
    crop = refs[11].crop((x0, y0, x1, y1)).resize((630, 495), Image.Resampling.BICUBIC)
    hits = search_one(det, index, crop)
    assert hits and hits[0].ref_id == 11
    extra = hits[0].extra
    assert abs(extra["ref_visible"] - (x1 - x0) * (y1 - y0) / (W * H)) < 0.08
    crop_rect = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64)
    assert polygon_iou(extra["ref_polygon"], crop_rect) > 0.85
    assert polygon_iou(extra["asset_polygon"], rect(630, 495)) > 0.85


def test_rotated_jpeg_graded_copy(det, index, refs):
    centre = QUAD.mean(axis=0)
    a = np.radians(25)
    rot = (QUAD - centre) @ np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]]) + centre
    scene = paste(refs[11], rot)
    scene = ImageOps.autocontrast(Image.fromarray((np.asarray(scene) * [1.0, 0.8, 0.6]).astype(np.uint8)))
    buf = io.BytesIO()
    scene.save(buf, "JPEG", quality=30)
    hits = search_one(det, index, Image.open(buf).convert("RGB"))
    assert hits and hits[0].ref_id == 11
    assert polygon_iou(hits[0].extra["asset_polygon"], rot) > 0.8


@pytest.mark.parametrize("name", ["solid", "gradient", "tiny", "noise", "brick"])
def test_flat_and_generic_images_give_no_finding(det, index, name):
    rng = np.random.default_rng(3)
    if name == "solid":
        img = Image.new("RGB", (640, 480), (40, 120, 200))
    elif name == "gradient":
        img = Image.fromarray(np.tile(np.linspace(0, 255, 640, dtype=np.uint8), (480, 1))).convert("RGB")
    elif name == "tiny":
        img = Image.new("RGB", (1, 1), (0, 0, 0))
    elif name == "noise":
        img = Image.fromarray(rng.integers(0, 256, (600, 800, 3), dtype=np.uint8))
    else:
        arr = np.full((600, 800, 3), 170, np.uint8)
        for row, y in enumerate(range(0, 600, 30)):
            for x in range(-40 * (row % 2), 800, 80):
                arr[y + 3:y + 27, max(0, x + 3):max(0, x + 77)] = (150, 60, 40) + rng.integers(-25, 25, 3)
        img = Image.fromarray(np.clip(arr.astype(int) + rng.integers(-15, 15, arr.shape), 0, 255).astype(np.uint8))
    emb = det.embed_queries([img])[0]
    if name in ("solid", "gradient", "tiny"):
        assert emb.empty and "image.local" in emb.note
    assert det.search(index, [emb]) == [[]]


def test_featureless_reference_left_to_other_detectors(det):
    embs = det.embed_references([Image.new("RGB", (500, 400), (200, 10, 10)), Image.new("RGB", (1, 1))])
    for emb in embs:
        assert emb.empty and "image.pdq" in emb.note and "image.sscd" in emb.note


def test_mirror_permutation_matches_descriptors_of_the_mirror_image(det):
    grey, scale = _grey(work(4), 1024)
    direct = _features(det._sift, grey, scale, 2000)
    mirror = _features(det._sift, np.ascontiguousarray(grey[:, ::-1]), scale, 2000)
    mirror.xy[:, 0] = grey.shape[1] * scale - mirror.xy[:, 0]
    d = np.linalg.norm(direct.xy[:, None, :] - mirror.xy[None, :, :], axis=2)
    i, j = np.nonzero(d < 1.0)  # the same keypoint, found again in the mirror (SIFT's grid shifts it <= 0.5 px)
    permuted = mirror_descriptors(direct.desc[i])
    same = np.linalg.norm(permuted - mirror.desc[j], axis=1)
    assert len(np.unique(i)) > 0.8 * len(direct.xy)
    # a keypoint may have two orientations; the best candidate per keypoint must be (nearly) identical
    best = [same[i == k].min() for k in np.unique(i)]
    assert np.median(best) < 0.02 and np.percentile(best, 90) < 0.1
    assert np.median(np.linalg.norm(direct.desc[i] - mirror.desc[j], axis=1)) > 0.2  # unpermuted: not the same


def test_other_params_refused(det, index, tmp_path):
    store = IndexStore(tmp_path / "indexes")
    store.save("image.local", index, det.model_id, det.weights_sha256, {}, det.params)
    other = LocalDetector(Settings(), work_side=768)
    with pytest.raises(IndexMismatchError):
        store.load("image.local", other.model_id, other.weights_sha256, other.dim, other.metric, other.load_index,
                   other.params)
    with pytest.raises(IndexCorruptError):
        det.load_index(b"not an index")
    with pytest.raises(IndexMismatchError, match="older format.*--rebuild"):
        det.load_index(b"SCANLOC1" + bytes(40))  # format 2 bytes


def test_remove_and_add_back(det, refs):
    index = build(det, refs)
    scene = det.embed_queries([paste(refs[12], QUAD)])
    rows = index.rows
    removed = index.remove(np.array([12, 999]))
    assert removed > 0 and index.rows == rows - removed and 12 not in index.ids().tolist()
    assert all(h.ref_id != 12 for h in det.search(index, scene)[0])
    with pytest.raises(LocalIndexError):
        build(det, {11: refs[11]}, index)  # already there
    build(det, {12: refs[12]}, index)
    assert det.search(index, scene)[0][0].ref_id == 12


def test_shards_merged_equal_one_index(det, refs):
    queries = det.embed_queries([paste(refs[12], QUAD), paste(ImageOps.mirror(refs[13]), QUAD),
                                 refs[11].resize((500, 287))])
    whole = build(det, refs)
    a = build(det, {11: refs[11], 12: refs[12]})
    b = build(det, {13: refs[13]})
    a.merge(b)
    assert a.ids().tolist() == whole.ids().tolist() and a.rows == whole.rows
    assert det.search(a, queries) == det.search(whole, queries)
    with pytest.raises(LocalIndexError):
        a.merge(build(det, {13: refs[13]}))  # overlapping shards


def test_trained_shards_merge_and_codebooks_must_agree(det, refs):
    embs = det.embed_references(list(refs.values()))
    rng = np.random.default_rng(0)
    pool = np.concatenate([e.vectors for e in embs])
    sample = np.abs(pool[rng.integers(0, len(pool), 6000)] + rng.normal(0, 0.03, (6000, 128))).astype(np.float32)
    base = LocalIndex(auto_train_rows=None)
    base.train(sample / np.linalg.norm(sample, axis=1, keepdims=True))
    assert base.mode == "ivfpq" and base.codebook[:16] in base.kind
    whole, a, b = base.empty_like(), base.empty_like(), base.empty_like()
    for target, chosen in ((whole, (11, 12, 13)), (a, (11, 12)), (b, (13,))):
        build(det, {k: refs[k] for k in chosen}, target)
    a.merge(b)
    queries = det.embed_queries([paste(refs[12], QUAD)])
    assert det.search(a, queries) == det.search(whole, queries)
    assert det.search(a, queries)[0][0].ref_id == 12
    again = LocalIndex.from_bytes(a.to_bytes())
    assert again.codebook == a.codebook and det.search(again, queries) == det.search(a, queries)
    other = LocalIndex(auto_train_rows=None)
    other.train(sample[::-1].copy() / np.linalg.norm(sample, axis=1, keepdims=True)[::-1], seed=7)
    with pytest.raises(IndexMismatchError, match="codebook"):
        other.merge(a)


def test_index_trains_itself_when_it_grows(det, refs):
    """The API adds a new index's rows in one call; past ``auto_train_rows`` it becomes IVF-PQ and still finds."""
    rng = np.random.default_rng(1)
    pool = np.concatenate([e.vectors for e in det.embed_references(list(refs.values()))])
    n = 12 * 512
    filler = np.abs(pool[rng.integers(0, len(pool), n)] + rng.normal(0, 0.05, (n, 128))).astype(np.float32)
    filler /= np.linalg.norm(filler, axis=1, keepdims=True)
    index = LocalIndex(auto_train_rows=6000, expected_rows=det.new_index(40).expected_rows)
    index.add(np.repeat(np.arange(100, 112), 512), filler,
              {"xy": rng.uniform(0, 500, (n, 2)), "size": np.tile([600, 500], (n, 1))})
    assert index.mode == "ivfpq" and index.trained_rows == n
    build(det, refs, index)
    assert det.search(index, det.embed_queries([paste(refs[12], QUAD)]))[0][0].ref_id == 12
    assert LocalIndex.from_bytes(index.to_bytes()).kind == index.kind


@pytest.mark.parametrize("mode", ["I;16", "CMYK", "P", "RGBA", "LA", "big"])
def test_unusual_inputs_do_not_crash(det, index, mode):
    base = work(5)
    if mode == "I;16":
        img = Image.fromarray(np.asarray(base.convert("L"), np.uint16) * 257)
        assert img.mode.startswith("I;16")
    elif mode == "big":
        img = base.resize((6000, 3438), Image.Resampling.BILINEAR)
    else:
        img = base.convert(mode)
    emb = det.embed_queries([img])[0]
    assert not emb.empty
    hits = det.search(index, [emb])[0]
    assert hits == [] or all(h.score >= MIN_INLIERS for h in hits)
    if mode == "big":
        assert emb.extra["size"][0].tolist() == [6000, 3438]


def test_20000_px_image_is_downscaled_before_anything_else(det, index):
    img = Image.new("1", (20_000, 20_000), 1)  # 50 MB as bits; an RGB copy would be 1.2 GB
    emb = det.embed_queries([img])[0]
    assert emb.empty and det.search(index, [emb]) == [[]]


def test_animated_gif_first_frame(det, index, refs):
    frames = [refs[12].convert("P", palette=Image.Palette.ADAPTIVE), Image.new("P", (W, H))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100)
    img = decode_image(buf.getvalue(), 10**8)
    hits = search_one(det, index, img)
    assert hits and hits[0].ref_id == 12 and hits[0].extra["ref_visible"] > 0.9
