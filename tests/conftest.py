"""Shared fixtures: generated images (no ../shared needed), isolated settings and CLI env."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image, ImageEnhance, ImageOps

from scanner.config import Settings
from scanner.testing.fixtures import artwork

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny PNG whose header declares a huge image (decompression bomb shape)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """PDQ-only settings in a temp workspace (fast; no torch model)."""
    return Settings(catalog=tmp_path / "ws" / "catalog.db", index_dir=tmp_path / "ws" / "indexes",
                    model_cache=tmp_path / "ws" / "models", detectors=("image.pdq",),
                    detector_options={"image.clip": {"model": "clip-test-tiny"}})


@pytest.fixture
def works(tmp_path: Path) -> list[Path]:
    """Three registered-to-be works."""
    folder = tmp_path / "works"
    folder.mkdir()
    paths = []
    for seed in (1, 2, 3):
        p = folder / f"work_{seed}.jpg"
        artwork(seed).save(p, quality=92)
        paths.append(p)
    return paths


@pytest.fixture
def deliverables(tmp_path: Path, works: list[Path]) -> Path:
    """A folder with a resized copy, a mirrored graded copy and two originals."""
    folder = tmp_path / "deliv"
    (folder / "sub").mkdir(parents=True)
    w1, w2 = Image.open(works[0]), Image.open(works[1])
    w1.resize((400, 267)).save(folder / "copy_resized.jpg", quality=50)
    ImageEnhance.Color(ImageOps.mirror(w2)).enhance(1.5).save(folder / "sub" / "copy_mirrored.png")
    artwork(501).save(folder / "original_a.jpg", quality=85)
    artwork(502).save(folder / "sub" / "original_b.png")
    (folder / "notes.txt").write_text("sidecar, not media")
    return folder


def by_name(results) -> dict:
    """Results keyed by file name."""
    out = {}
    for r in results:
        rec = r if isinstance(r, dict) else r.to_dict()
        out[Path(rec["path"]).name] = rec
    return out


@pytest.fixture
def clean_env(tmp_path, monkeypatch):
    """No SCANNER_* variables and no scanner.toml in the working directory."""
    for key in list(os.environ):
        if key.startswith("SCANNER_"):
            monkeypatch.delenv(key)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    return work
