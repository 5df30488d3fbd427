"""The bundled demo sample (examples/sample/): licensed real photos, a manifest, a reproducible scenario."""

from __future__ import annotations

import csv
import importlib.util
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "examples" / "sample"


def _make_sample():
    spec = importlib.util.spec_from_file_location("make_sample", REPO / "examples" / "make_sample.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("make_sample", mod)  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def _rows(name: str) -> list[dict[str, str]]:
    with open(SAMPLE / name, newline="") as fh:
        return list(csv.DictReader(fh))


def test_manifest_names_every_file_with_source_licence_author_and_changes():
    rows = _rows("MANIFEST.csv")
    on_disk = {p.relative_to(SAMPLE).as_posix() for p in SAMPLE.rglob("*") if p.is_file()}
    assert sorted(r["file"] for r in rows) == sorted(on_disk)
    for r in rows:
        assert all(r[k].strip() for k in ("source", "licence", "author", "modifications")), r


def test_catalog_registers_uncleared_licensed_and_owned_works_that_exist():
    rows = _rows("catalog.csv")
    assert {r["clearance"] for r in rows} == {"uncleared", "licensed", "owned"}
    for r in rows:
        assert (SAMPLE / r["path"]).is_file(), r["path"]


def test_sample_is_small_and_photos_fit_1024px():
    total = sum(p.stat().st_size for p in SAMPLE.rglob("*") if p.is_file())
    assert total < 3 * 2**20
    for p in SAMPLE.rglob("*"):
        if p.suffix in (".jpg", ".png"):
            assert max(Image.open(p).size) <= 1024, p


def test_make_sample_rebuilds_the_committed_deliverables(tmp_path):
    """The derived copies, catalog and manifest are exactly what make_sample.py makes from the works."""
    ms = _make_sample()
    shutil.copytree(SAMPLE / "works", tmp_path / "works")
    ms.derive(tmp_path)
    for name in ("catalog.csv", "MANIFEST.csv", ms.NOTES):
        assert (tmp_path / name).read_text() == (SAMPLE / name).read_text(), name
    for d in ms.DERIVED:
        got = np.asarray(Image.open(tmp_path / d.dest).convert("RGB"), np.int16)
        want = np.asarray(Image.open(SAMPLE / d.dest).convert("RGB"), np.int16)
        assert got.shape == want.shape and np.abs(got - want).max() <= 2, d.dest


def test_sscd_separates_the_copies_from_the_originals(tmp_path):
    """Each derived copy is far closer to its own work than any other pair is, so the demo's
    verdicts come from the images, not from a lucky threshold."""
    pytest.importorskip("onnxruntime")
    from scanner.config import Settings
    from scanner.detectors.sscd import SscdDetector

    ms = _make_sample()
    det = SscdDetector(Settings(model_cache=tmp_path / "models"))
    works = [r["path"] for r in _rows("catalog.csv")]
    deliverables = sorted(p.relative_to(SAMPLE).as_posix() for p in (SAMPLE / "deliverables").rglob("*")
                          if p.suffix in (".jpg", ".png"))

    def vectors(paths, embed):
        return np.concatenate([e.vectors[:1] for e in embed([Image.open(SAMPLE / p).convert("RGB") for p in paths])])

    sim = vectors(deliverables, det.embed_queries) @ vectors(works, det.embed_references).T
    copy_of = {d.dest: d.work for d in ms.DERIVED}
    copies = [sim[i, works.index(copy_of[d])] for i, d in enumerate(deliverables) if d in copy_of]
    others = [sim[i, j] for i, d in enumerate(deliverables) for j, w in enumerate(works) if copy_of.get(d) != w]
    assert len(copies) == len(ms.DERIVED)
    assert min(copies) > 0.7 and max(others) < 0.3, (copies, max(others))
