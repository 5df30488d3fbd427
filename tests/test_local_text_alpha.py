"""``image.local`` with text and alpha: lettering alone never verifies a match; character art is
matched from inside its opaque mask and located as a polygon; the OCR model is pinned."""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont, ImageOps

from scanner.config import Settings
from scanner.detectors import create
from scanner.detectors.base import Embedding
from scanner.detectors.local import LocalDetector, polygon_iou
from scanner.detectors.ocr import MODEL, TextDetectionError, TextFinder
from scanner.errors import ConfigError, ModelMissingError
from scanner.index.local_index import LocalIndex
from scanner.media.image import alpha_mask, decode_image
from scanner.policy.calibration import load_calibration
from scanner.testing.fixtures import artwork
from tests.test_local import QUAD, build, paste, rect, work

MIN_INLIERS = load_calibration(Settings().calibration).floors("image.local", "rootsift-v1")["min_inliers"]

REPO = Path(__file__).resolve().parents[1]


def titled(img: Image.Image, title: str = "NEON CITY") -> Image.Image:
    """A poster's title band: the same lettering in the same typeface on any picture."""
    out = img.copy()
    w, h = out.size
    draw = ImageDraw.Draw(out)
    draw.rectangle([0, h - 90, w, h], fill=(15, 15, 20))
    draw.text((40, h - 80), title, fill=(240, 230, 190), font=ImageFont.load_default(size=64))
    return out


def figure(seed: int, size=(420, 520)) -> Image.Image:
    """Character-like art with alpha: a textured artwork seen through an ellipse, transparent around it."""
    w, h = size
    art = artwork(seed, (w, h)).crop((0, 0, w, h - 80)).resize((w, h))
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).ellipse([30, 20, w - 30, h - 20], fill=255)
    rgba = art.convert("RGBA")
    rgba.putalpha(mask)
    return rgba


def ellipse_poly(x0, y0, x1, y1, n=64) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.c_[(x0 + x1) / 2 + (x1 - x0) / 2 * np.cos(t), (y0 + y1) / 2 + (y1 - y0) / 2 * np.sin(t)]


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def composite(cut: Image.Image, at=(500, 180), size=(1200, 900), seed=4) -> Image.Image:
    bg = np.random.default_rng(seed).integers(0, 256, (size[1] // 8, size[0] // 8, 3), dtype=np.uint8)
    scene = Image.fromarray(bg).resize(size, Image.Resampling.BICUBIC).convert("RGBA")
    scene.alpha_composite(cut, at)
    return scene.convert("RGB")


@pytest.fixture(scope="module")
def det() -> LocalDetector:
    return create("image.local", Settings())


@pytest.fixture(scope="module")
def plain() -> LocalDetector:
    return LocalDetector(Settings(), text=False)


# ------------------------------------------------------------------ installation and the model


def test_one_opencv_build_and_the_ocr_package_installed():
    builds = []
    for dist in ("opencv-python", "opencv-python-headless", "opencv-contrib-python", "opencv-contrib-python-headless"):
        try:
            importlib.metadata.version(dist)
            builds.append(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    assert builds == ["opencv-python-headless"], builds
    assert importlib.metadata.version("rapidocr-onnxruntime") == "1.4.4"
    assert cv2.SIFT_create() is not None


def test_ocr_model_is_read_from_the_package_and_pinned():
    spec = json.loads((REPO / "models" / f"{MODEL}.json").read_text())
    finder = TextFinder(Settings())
    import rapidocr_onnxruntime

    path = Path(rapidocr_onnxruntime.__file__).parent / spec["config"]["path"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == spec["sha256"] == finder.sha256


def test_ocr_model_with_another_hash_or_absent_is_one_clear_error(tmp_path):
    spec = json.loads((REPO / "models" / f"{MODEL}.json").read_text())
    reg = tmp_path / "models"
    reg.mkdir()
    (reg / f"{MODEL}.json").write_text(json.dumps({**spec, "sha256": "0" * 64}))
    settings = Settings(model_registry=reg, model_cache=tmp_path / "cache")
    with pytest.raises(ConfigError, match="sha256"):
        TextFinder(settings)
    with pytest.raises(ConfigError, match="sha256"):
        LocalDetector(settings)
    (reg / f"{MODEL}.json").write_text(json.dumps({**spec, "config": {**spec["config"], "package": "no_such_pkg"}}))
    with pytest.raises(ModelMissingError, match="pip install"):
        TextFinder(settings)


def test_title_band_is_found_as_text():
    finder = TextFinder(Settings())
    boxes = finder.boxes(artwork(1))  # 768 x 512 with "OPUS 001" in the band below y = 442
    assert len(boxes) >= 1
    assert all(b[:, 1].min() >= 442 - 8 for b in boxes)
    assert len(finder.boxes(work(1))) == 0  # the same artwork without its band: no text


# ------------------------------------------------------------------ text


def test_unrelated_works_sharing_the_title_do_not_match(det, plain):
    ref, other = titled(work(1)), titled(work(2))
    index = build(det, {21: ref})
    hits = det.search(index, det.embed_queries([other]))[0]
    assert all(h.score < MIN_INLIERS for h in hits)
    assert hits and hits[0].extra.get("text_only") and "shares the title lettering only" in hits[0].extra["evidence"]
    # the same pair without text boxes verifies on the lettering: the case is real
    base = plain.search(build(plain, {21: ref}), plain.embed_queries([other]))[0]
    assert base and base[0].score >= MIN_INLIERS


def test_titled_work_pasted_into_a_scene_is_still_found(det):
    ref = titled(work(3))
    index = build(det, {22: ref, 23: titled(work(4))})
    hits = det.search(index, det.embed_queries([paste(ref, QUAD)]))[0]
    assert hits and hits[0].ref_id == 22 and hits[0].score >= MIN_INLIERS
    top = hits[0].extra
    assert top["inliers"] == hits[0].score and top["coverage"] > 0.2 and not top.get("text_only")
    # the title came along: its keypoints agree with the artwork's homography and are reported, not scored
    assert top["text_inliers"] > top["inliers"] and top["mostly_text"]
    assert top["evidence"].startswith("mostly text") and "keypoints on the artwork" in top["evidence"]
    assert polygon_iou(top["asset_polygon"], QUAD) > 0.85
    assert all(h.score < MIN_INLIERS for h in hits[1:])  # the other poster shares the band and typeface only


def test_keypoints_on_text_are_flagged_in_the_index(det):
    emb = det.embed_references([titled(work(5))])[0]
    on_text = emb.extra["text"]
    xy = emb.extra["xy"]
    assert on_text.any() and not on_text.all()
    assert np.all(xy[on_text, 1] >= 350 - 30)  # the band starts at y = 350 (440 - 90); margins reach a little above
    index = build(det, {5: titled(work(5))})
    again = LocalIndex.from_bytes(index.to_bytes())
    assert np.array_equal(again.on_text(5), index.on_text(5)) and again.on_text(5).sum() == on_text.sum()


def test_failed_text_detection_still_checks_the_asset_with_a_note(det, monkeypatch):
    ref = work(6)
    index = build(det, {31: ref})

    def broken(img):
        raise TextDetectionError("text detection failed: RuntimeError: simulated")

    monkeypatch.setattr(det._text, "boxes", broken)
    emb = det.embed_queries([paste(ref, QUAD)])[0]
    assert not emb.empty and not emb.note  # text is looked for only when a candidate is verified
    hits = det.search(index, [emb])[0]
    assert hits and hits[0].ref_id == 31 and hits[0].score >= MIN_INLIERS
    evidence = hits[0].extra["evidence"]
    assert "text detection failed" in evidence and "checked without text boxes" in evidence


def text_calls(det: LocalDetector, monkeypatch) -> list[tuple[int, int]]:
    """The size of every image the detector's text finder is given from now on (the finder still runs)."""
    calls: list[tuple[int, int]] = []
    finder = det._text
    real = type(finder).boxes
    monkeypatch.setattr(finder, "boxes", lambda img: calls.append(img.size) or real(finder, img))
    return calls


def test_text_is_looked_for_only_when_a_candidate_is_verified(det, monkeypatch):
    """An asset that shares nothing with the catalog never runs text detection; one that does runs it
    once, and its hits are those of finding the text at embedding time."""
    calls = text_calls(det, monkeypatch)
    ref = titled(work(9))
    index = build(det, {61: ref, 62: titled(work(10))})
    calls.clear()  # the references' own text boxes
    noise = np.random.default_rng(0).integers(0, 256, (440, 768, 3), dtype=np.uint8)
    other = Image.fromarray(cv2.GaussianBlur(noise, (0, 0), 2))  # texture, but nothing any work has
    (q,) = det.embed_queries([other])
    assert not q.empty and det.search(index, [q])[0] == []
    assert calls == []
    copy = det.embed_queries([paste(ref, QUAD)])
    lazy = det.search(index, copy)[0]
    assert len(calls) == 1
    det.search(index, copy)
    assert len(calls) == 1  # found once per embedding
    (q,) = det.embed_queries([paste(ref, QUAD)])
    flags, _ = q.deferred.get()
    eager = Embedding(q.vectors, q.note, {**q.extra, "text": np.concatenate([flags, flags])})
    assert flags.any()
    assert lazy and lazy == det.search(index, [eager])[0]


def test_candidates_no_homography_could_verify_are_dropped_before_the_text_is_looked_for(det, monkeypatch):
    """The same hits as verifying every candidate with the asset's text; text detection runs only for an
    asset with a candidate whose fit on every match explains ``min_inliers``."""
    calls = text_calls(det, monkeypatch)
    ref = titled(work(13))
    index = build(det, {81: ref, 82: titled(work(14))})
    queries = [paste(ref, QUAD), paste(titled(work(15)), QUAD), titled(work(16)), paste(work(17), QUAD)]

    def run(skip: bool) -> tuple[list, int]:
        monkeypatch.setattr(det, "skip_unverifiable", skip)
        calls.clear()
        found = [[(h.ref_id, h.score, h.extra["evidence"]) for h in hits]
                 for hits in det.search(index, det.embed_queries(queries))]
        return found, len(calls)

    (every, n_every), (skipped, n_skipped) = run(False), run(True)
    assert skipped == every
    assert every[0] and every[0][0][0] == 81 and every[0][0][1] >= MIN_INLIERS  # the copy
    assert every[1] and all(score < MIN_INLIERS for _, score, _ in every[1])  # shares the title only
    assert n_skipped < n_every
    monkeypatch.setattr(det, "min_inliers", 10**6)  # nothing could verify: no text detection at all
    calls.clear()
    det.search(index, det.embed_queries(queries[:1]))
    assert calls == []


def test_a_pickled_query_embedding_keeps_its_text_flags(det):
    import pickle

    ref = titled(work(12))
    index = build(det, {71: ref})
    (q,) = det.embed_queries([paste(ref, QUAD)])
    again = pickle.loads(pickle.dumps(q))
    assert again.deferred._finder is None and np.array_equal(again.deferred.get()[0], q.deferred.get()[0])
    assert [(h.ref_id, h.score) for h in det.search(index, [again])[0]] == \
        [(h.ref_id, h.score) for h in det.search(index, [q])[0]]


def test_clustered_inliers_below_the_cover_share_do_not_verify(det, monkeypatch):
    """A copy whose inliers off the text span less than the min_cover floor of the reference is not reported."""
    ref = work(7)
    index = build(det, {41: ref})
    q = det.embed_queries([paste(ref, QUAD)])
    hit = det.search(index, q)[0][0]
    assert hit.extra["coverage"] > 0.3
    monkeypatch.setattr(det, "min_cover", hit.extra["coverage"] + 0.01)
    assert all(h.ref_id != 41 or h.score < MIN_INLIERS for h in det.search(index, q)[0])


# ------------------------------------------------------------------ alpha


def test_decode_keeps_the_alpha_mask():
    cut = figure(1)
    img = decode_image(png_bytes(cut), 10**8)
    assert img.mode == "RGB"
    mask = alpha_mask(img)
    assert mask is not None and np.array_equal(mask, np.asarray(cut.getchannel("A")))
    small = img.resize((210, 260))
    assert alpha_mask(small).shape == (260, 210)
    big = decode_image(png_bytes(cut.resize((4200, 5200))), 10**9)  # thumbnailed to 2048 while decoding
    assert alpha_mask(big).shape == (big.height, big.width)
    opaque = cut.copy()
    opaque.putalpha(255)
    assert alpha_mask(decode_image(png_bytes(opaque), 10**8)) is None


def test_alpha_reference_keypoints_come_from_inside_the_mask(det):
    cut = figure(2)
    img = decode_image(png_bytes(cut), 10**8)
    emb = det.embed_references([img])[0]
    inside = cv2.distanceTransform((np.asarray(cut.getchannel("A")) >= 128).astype(np.uint8), cv2.DIST_L2, 3)
    xy = np.rint(emb.extra["xy"] - 0.5).astype(int)
    assert np.all(inside[xy[:, 1], xy[:, 0]] >= 1)  # every keypoint inside the opaque region
    outline = emb.extra["outline"][np.isfinite(emb.extra["outline"][:, 0])]
    assert polygon_iou(outline, ellipse_poly(30, 20, 390, 500)) > 0.95
    # the same picture with its alpha dropped has keypoints on the silhouette's edge (what the mask removes)
    flat = det.embed_references([Image.fromarray(np.asarray(img))])[0]  # a fresh image: no mask in info
    fxy = np.rint(flat.extra["xy"] - 0.5).astype(int).clip(0, [cut.width - 1, cut.height - 1])
    assert (inside[fxy[:, 1], fxy[:, 0]] == 0).any()  # some lie on the white around the figure


@pytest.mark.parametrize("mirrored", [False, True])
def test_character_composited_by_alpha_is_found_and_located_as_polygons(det, mirrored):
    refs = {51: decode_image(png_bytes(figure(3)), 10**8), 52: decode_image(png_bytes(figure(4)), 10**8)}
    index = build(det, refs)
    cut = figure(3).resize((336, 416))
    if mirrored:
        cut = ImageOps.mirror(cut)
    at = (520, 200)
    hits = det.search(index, det.embed_queries([composite(cut, at)]))[0]
    assert hits and hits[0].ref_id == 51 and hits[0].extra["mirrored"] == mirrored
    extra = hits[0].extra
    truth = ellipse_poly(at[0] + 24, at[1] + 16, at[0] + 312, at[1] + 400)  # the ellipse scaled by 0.8
    assert polygon_iou(extra["asset_polygon"], truth) > 0.85
    assert polygon_iou(extra["ref_polygon"], ellipse_poly(30, 20, 390, 500)) > 0.85
    assert extra["ref_visible"] > 0.85
    assert len(extra["asset_polygon"]) > 4  # the figure's outline, not the image's rectangle


def test_calibration_gives_block_and_review_distinct_levels():
    cal = json.loads((REPO / "scanner" / "policy" / "calibration.json").read_text())
    entry = cal["detectors"]["image.local"]["rootsift-v1"]
    assert entry["final"]["block"] > entry["final"]["review"] >= MIN_INLIERS
    assert entry["measured"]["params"]["text"].startswith(MODEL)


def test_scan_with_failing_text_detection_still_blocks_the_copy_and_says_so(tmp_path, monkeypatch):
    """Through the API: the finding the failure concerns says so."""
    from scanner.api import Scanner
    from scanner.detectors.ocr import TextFinder as Finder

    def broken(self, img):
        raise TextDetectionError("text detection failed: RuntimeError: simulated")

    monkeypatch.setattr(Finder, "boxes", broken)
    ws = tmp_path / "ws"
    settings = Settings(catalog=ws / "catalog.db", index_dir=ws / "indexes", model_cache=ws / "models",
                        detectors=("image.local",))
    ref = tmp_path / "poster.png"
    work(8).save(ref)
    copy = tmp_path / "scene.png"
    paste(work(8), QUAD).save(copy)
    s = Scanner(settings)
    s.add_reference([ref])
    s.build_index()
    rec = s.check(copy).to_dict()
    assert rec["verdict"] == "block", rec
    said = json.dumps(rec["findings"])
    assert "text detection failed" in said and "checked without text boxes" in said


def test_fully_transparent_reference_is_left_to_other_detectors_with_a_note(det):
    clear = figure(5)
    clear.putalpha(0)
    emb = det.embed_references([decode_image(png_bytes(clear), 10**8)])[0]
    assert emb.empty and "inside its opaque region" in emb.note and "image.pdq" in emb.note
