"""Python API end to end: register, index, check, scan, incremental builds, refusals."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from scanner.api import Scanner
from scanner.errors import IndexMismatchError, ModelMissingError
from scanner.types import Clearance, Stage, Verdict
from tests.conftest import by_name


def test_copy_is_blocked_original_passes(settings, works, deliverables):
    s = Scanner(settings)
    s.add_reference(works, rights_holder="Studio X")
    s.build_index()
    res = by_name(s.scan([deliverables]))
    assert set(res) == {"copy_resized.jpg", "copy_mirrored.png", "original_a.jpg", "original_b.png"}  # notes.txt skipped
    assert res["copy_resized.jpg"]["verdict"] == "block"
    finding = res["copy_resized.jpg"]["findings"][0]
    assert finding["reference_title"] == "work_1" and finding["rights_holder"] == "Studio X"
    assert finding["detector"] == "image.pdq" and finding["score"] <= finding["threshold_block"]
    # Mirrored copy is only found through the dihedral query hashes.
    assert res["copy_mirrored.png"]["verdict"] == "block"
    assert res["copy_mirrored.png"]["findings"][0]["reference_title"] == "work_2"
    assert res["original_a.jpg"]["verdict"] == "pass" and res["original_a.jpg"]["findings"] == []
    assert res["original_b.png"]["verdict"] == "pass"
    assert res["original_a.jpg"]["models"] == {"image.pdq": "pdq"}
    assert res["original_a.jpg"]["calibration"]


def test_check_single_file_matches_scan(settings, works, deliverables):
    s = Scanner(settings)
    s.add_reference(works)
    one = s.check(deliverables / "copy_resized.jpg")
    assert one.verdict is Verdict.BLOCK
    assert json.loads(json.dumps(one.to_dict()))["verdict"] == "block"


def test_licensed_reference_is_cleared_not_blocked(settings, works, deliverables):
    s = Scanner(settings)
    s.add_reference([works[0]], clearance=Clearance.LICENSED)
    r = s.check(deliverables / "copy_resized.jpg")
    assert r.verdict is Verdict.PASS
    assert [f.level for f in r.findings] == ["cleared"]
    assert "licensed" in r.findings[0].note


def test_readding_same_file_is_idempotent(settings, works, tmp_path):
    s = Scanner(settings)
    first = s.add_reference(works)
    dup = tmp_path / "same_bytes.jpg"
    shutil.copy(works[0], dup)
    again = s.add_reference([works[0], dup])
    assert all(o.created for o in first)
    assert not any(o.created for o in again)
    assert again[0].reference.id == again[1].reference.id == first[0].reference.id
    assert s.catalog.count() == 3


def test_incremental_build_adds_and_removes(settings, works, deliverables):
    s = Scanner(settings)
    s.add_reference(works[1:])
    (rep,) = s.build_index()
    assert (rep.added, rep.count) == (2, 2)
    assert s.check(deliverables / "copy_resized.jpg").verdict is Verdict.PASS  # work_1 not registered yet
    s.add_reference(works[:1])
    (rep,) = s.build_index()
    assert (rep.added, rep.removed, rep.count) == (1, 0, 3)
    assert s.check(deliverables / "copy_resized.jpg").verdict is Verdict.BLOCK
    s.remove_references([str(s.catalog.works()[-1].id)])
    (rep,) = s.build_index()
    assert (rep.added, rep.removed, rep.count) == (0, 1, 2)
    assert s.check(deliverables / "copy_resized.jpg").verdict is Verdict.PASS


def test_scan_refreshes_a_stale_index(settings, works, deliverables):
    s = Scanner(settings)
    s.add_reference(works[1:])
    s.build_index()
    s.add_reference(works[:1])  # not indexed yet: a scan must not silently miss it
    assert Scanner(settings).check(deliverables / "copy_resized.jpg").verdict is Verdict.BLOCK


def _count_calls(monkeypatch, obj, name: str) -> list:
    calls: list = []
    real = getattr(obj, name)
    monkeypatch.setattr(obj, name, lambda *a, **k: calls.append(a) or real(*a, **k))
    return calls


def test_checks_after_the_first_do_not_read_every_reference(settings, works, deliverables, monkeypatch):
    s = Scanner(settings)
    s.add_reference(works)
    assert s.check(deliverables / "copy_resized.jpg").verdict is Verdict.BLOCK
    listed, fetched = _count_calls(monkeypatch, s.catalog, "works"), _count_calls(monkeypatch, s.catalog, "get")
    again = s.check(deliverables / "copy_resized.jpg")
    assert again.verdict is Verdict.BLOCK and again.findings[0].reference_title == "work_1"
    assert listed == [] and 1 <= len(fetched) == len(set(fetched))  # the works hits name, each once


def test_a_sync_reads_the_works_once_for_every_image_detector(settings, works, monkeypatch):
    s = Scanner(dataclasses.replace(settings, detectors=("image.pdq", "image.local")))
    s.add_reference(works)
    listed = _count_calls(monkeypatch, s.catalog, "works")
    reports = s.build_index()
    assert [r.count for r in reports] == [3, 3] and listed == [("image",)]


def test_a_long_lived_scanner_sees_what_another_one_registers(settings, works, deliverables):
    """A service's scanner and a `scanner refs add` in another process share the catalog and the indexes."""
    service = Scanner(settings)
    service.add_reference(works[1:])
    assert service.check(deliverables / "copy_resized.jpg").verdict is Verdict.PASS
    other = Scanner(settings)
    (added,) = other.add_reference(works[:1])  # registered only: the service's next check indexes it
    assert service.check(deliverables / "copy_resized.jpg").verdict is Verdict.BLOCK
    other.remove_references([str(added.reference.id)])
    other.build_index()  # removed and rebuilt elsewhere: the service picks the index up from disk
    assert service.check(deliverables / "copy_resized.jpg").verdict is Verdict.PASS
    assert len(service.loaded_indexes()["image.pdq"].checksum) and service.loaded_indexes()["image.pdq"].count == 2


def test_index_survives_reload_with_same_results(settings, works, deliverables):
    s = Scanner(settings)
    s.add_reference(works)
    s.build_index()
    before = [r.to_dict() for r in s.scan([deliverables])]
    after = [r.to_dict() for r in Scanner(settings).scan([deliverables])]
    assert before == after


def test_index_from_other_model_is_refused(settings, works, deliverables, tmp_path):
    registry = tmp_path / "registry"
    shutil.copytree(Path(settings.model_registry), registry)
    spec = json.loads((registry / "clip-test-tiny.json").read_text())
    spec.update(name="clip-test-tiny-b", seed=1)
    (registry / "clip-test-tiny-b.json").write_text(json.dumps(spec))
    base = dataclasses.replace(settings, detectors=("image.clip",), model_registry=registry)
    s = Scanner(base)
    s.add_reference(works)
    s.build_index()
    other = Scanner(base.with_options("image.clip", model="clip-test-tiny-b"))
    with pytest.raises(IndexMismatchError, match="clip-test-tiny"):
        other.check(deliverables / "copy_resized.jpg")
    (rep,) = other.build_index(rebuild=True)
    assert rep.rebuilt and rep.count == 3


def test_clip_test_model_is_named_in_results(settings, works, deliverables):
    s = Scanner(dataclasses.replace(settings, detectors=("image.pdq", "image.clip")))
    s.add_reference(works)
    r = s.check(deliverables / "copy_resized.jpg")
    assert r.models["image.clip"] == "clip-test-tiny (TEST MODEL, random weights)"
    assert r.verdict is Verdict.BLOCK


def test_missing_real_model_is_a_clear_error(settings, works):
    s = Scanner(dataclasses.replace(settings, detectors=("image.clip",)).with_options("image.clip", model="clip-vit-b-32-laion2b"))
    s.add_reference(works)
    with pytest.raises(ModelMissingError, match="scanner models import clip-vit-b-32-laion2b"):
        s.build_index()


def test_stage_changes_thresholds(settings, works, deliverables):
    final = Scanner(settings)
    final.add_reference(works)
    ideation = Scanner(dataclasses.replace(settings, stage=Stage.IDEATION))
    f = final.check(deliverables / "copy_resized.jpg").findings[0]
    i = ideation.check(deliverables / "copy_resized.jpg").findings[0]
    cal = final.calibration.detectors["image.pdq"]["pdq"]
    assert (f.threshold_block, f.threshold_review) == (cal["final"]["block"], cal["final"]["review"])
    assert (i.threshold_block, i.threshold_review) == (cal["ideation"]["block"], cal["ideation"]["review"])


def test_unregistered_reference_file_moved_is_reported(settings, works, tmp_path):
    s = Scanner(settings)
    s.add_reference(works)
    works[2].unlink()
    (rep,) = s.build_index()
    assert rep.count == 2
    assert any("reference file unusable" in why for why in rep.skipped.values())


def test_model_failing_on_one_asset_fails_that_asset_only(settings, works, deliverables, monkeypatch):
    s = Scanner(settings)
    s.add_reference(works)
    s.build_index()
    det = s.detectors["image.pdq"]
    real = det.embed_queries

    target = Image.open(deliverables / "original_a.jpg").convert("RGB").tobytes()

    def flaky(images):
        if any(img.convert("RGB").tobytes() == target for img in images):
            raise RuntimeError("simulated model failure")
        return real(images)

    monkeypatch.setattr(det, "embed_queries", flaky)
    res = by_name(s.scan([deliverables]))
    assert res["original_a.jpg"]["verdict"] == "error"
    assert "image.pdq could not check this asset" in res["original_a.jpg"]["error"]
    assert res["copy_resized.jpg"]["verdict"] == "block"  # the rest of the batch is still checked
    assert res["original_b.png"]["verdict"] == "pass"


def test_detectors_with_nothing_registered_do_not_load_their_models(settings, works, deliverables):
    s = Scanner(dataclasses.replace(settings, detectors=("image.pdq", "image.face", "audio.voice")))
    s.add_reference(works)
    res = by_name(s.scan([deliverables]))
    assert res["copy_resized.jpg"]["verdict"] == "block"
    assert set(s._loaded) == {"image.pdq"}  # no talent: dlib and the voice encoder never load
    assert res["original_a.jpg"]["models"] == {"image.pdq": "pdq"}
    assert set(s.running_detectors()) == {"image.pdq"}


def test_audit_label_names_the_caller_and_file_and_gets_the_record_id(settings, works, deliverables):
    from scanner.api import AuditLabel

    s = Scanner(settings, caller="cli:ops")
    s.add_reference(works)
    target = deliverables / "copy_resized.jpg"
    plain, labelled = str(deliverables / "original_a.jpg"), str(target)
    label = AuditLabel("key:abc", "client-name.jpg", source="upload", request_id="req-1")
    results = list(s.scan([plain, labelled], labels={labelled: label}))
    assert [r.path for r in results] == [plain, labelled]
    assert label.audit_id is not None
    entry = s.catalog.audit_entry(label.audit_id)
    assert entry.caller == "key:abc"
    assert (entry.record["path"], entry.record["source"], entry.record["request_id"]) == \
        ("client-name.jpg", "upload", "req-1")
    assert entry.record["verdict"] == "block"
    others = [e for e in s.catalog.audit_entries() if e.id != label.audit_id]
    assert [(e.caller, e.record["path"]) for e in others][-1] == ("cli:ops", plain)
