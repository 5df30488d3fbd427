"""Intake: registering works and talent (with validated samples), one by one or from CSV manifests.

A mixin of ``scanner.api.Scanner``: it reads ``self.settings``, ``self.catalog`` and ``self.detector``.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from PIL import Image

from scanner.catalog import NewSample, NewWork
from scanner.detectors.base import likeness_detector
from scanner.errors import ConfigError, MediaError, ScannerError
from scanner.media.decode import decode
from scanner.media.files import display_path, load
from scanner.media.sniff import AUDIO, IMAGE
from scanner.media.thumbs import thumbnail as _thumbnail
from scanner.types import Clearance, Reference, Talent, TalentSample

Progress = Callable[[int], None]  # called with the number of items just finished


@dataclass
class AddOutcome:
    """Result of registering one file."""

    path: str
    reference: Reference | None = None
    created: bool = False
    error: str | None = None


class Intake:
    """Reference and talent registration (see ``scanner.api.Scanner``)."""

    def add_reference(
        self, paths: Sequence[str | os.PathLike], title: str | None = None, rights_holder: str = "unknown",
        clearance: Clearance | str = Clearance.UNCLEARED,
    ) -> list[AddOutcome]:
        """Register image or audio files as works. Same file twice (by sha256) is registered once."""
        clearance = _clearance(clearance)
        out = []
        for p in paths:
            path = os.fspath(p)
            try:
                loaded = load(path, self.settings.max_file_bytes)
                if loaded.media_type not in (IMAGE, AUDIO):
                    raise MediaError(f"{loaded.media_type} references are not supported (images and audio only)")
                media = decode(loaded, self.settings)
            except MediaError as exc:
                out.append(AddOutcome(display_path(path), error=str(exc)))
                continue
            size = media.size if isinstance(media, Image.Image) else (0, 0)
            work = NewWork(
                sha256=loaded.sha256, title=title or Path(display_path(path)).stem, rights_holder=rights_holder,
                clearance=clearance, media_type=loaded.media_type, path=os.path.abspath(display_path(path)),
                width=size[0], height=size[1], thumbnail=_thumbnail(media),
                duration=getattr(media, "duration", 0.0),
            )
            ref, created = self.catalog.add_work(work)
            out.append(AddOutcome(display_path(path), ref, created))
        return out

    def import_manifest(self, csv_path: Path, progress: Progress | None = None) -> list[AddOutcome]:
        """Bulk register from a CSV with columns ``path`` and optional ``title``/``label``,
        ``rights_holder``/``owner``, ``clearance``. Relative paths are relative to the CSV."""
        rows = read_manifest(Path(csv_path))
        out = []
        for row in rows:
            path = row["path"]
            if not os.path.isabs(path):
                path = str(Path(csv_path).parent / path)
            try:
                clearance = _clearance(row.get("clearance") or Clearance.UNCLEARED)
            except ConfigError as exc:
                out.append(AddOutcome(path, error=str(exc)))
            else:
                out.extend(self.add_reference(
                    [path], title=row.get("title") or row.get("label") or None,
                    rights_holder=row.get("rights_holder") or row.get("owner") or "unknown", clearance=clearance,
                ))
            if progress:
                progress(1)
        return out

    def remove_references(self, keys: Iterable[str]) -> list[Reference]:
        """Remove works by id or sha256 (prefix); indexes drop them at the next build."""
        refs = [self.catalog.find(k) for k in keys]
        self.catalog.remove(r.id for r in refs)
        return refs

    def add_talent(self, name: str, photos: Sequence[str | os.PathLike] = (), voices: Sequence[str | os.PathLike] = (),
                   union_covered: bool = False, notes: str = "") -> Talent:
        """Register a real person with reference photos (exactly one face each) and voice samples."""
        if not photos and not voices:
            raise ScannerError(f"talent {name!r} needs at least one --photo or --voice sample")
        samples = self._talent_samples(photos, "face") + self._talent_samples(voices, "voice")
        return self.catalog.add_talent(name, union_covered, notes, samples)

    def add_talent_samples(self, key: str, photos: Sequence[str | os.PathLike] = (),
                           voices: Sequence[str | os.PathLike] = ()) -> list[TalentSample]:
        """Attach more photos/voice samples to an existing talent."""
        talent = self.catalog.find_talent(key)
        samples = self._talent_samples(photos, "face") + self._talent_samples(voices, "voice")
        return self.catalog.add_samples(talent.id, samples)

    def import_talent(self, csv_path: Path, progress: Progress | None = None) -> list[tuple[str, str | None]]:
        """Bulk register from a CSV with ``name`` and ``photo`` and/or ``voice`` columns (one sample per row;
        rows with the same name are grouped) and optional ``union_covered``. Returns (name, error) per talent."""
        groups: dict[str, dict[str, Any]] = {}
        for row in read_manifest(Path(csv_path), required="name"):
            g = groups.setdefault(row["name"], {"photos": [], "voices": [], "union": False})
            for col, key in (("photo", "photos"), ("voice", "voices")):
                if row.get(col):
                    p = row[col] if os.path.isabs(row[col]) else str(Path(csv_path).parent / row[col])
                    g[key].append(p)
            g["union"] |= row.get("union_covered", "").lower() in {"1", "true", "yes", "y"}
        out = []
        for name, g in groups.items():
            try:
                existing = self.catalog.talent_by_name(name)
                if existing:
                    self.add_talent_samples(name, g["photos"], g["voices"])
                else:
                    self.add_talent(name, g["photos"], g["voices"], g["union"])
                out.append((name, None))
            except ScannerError as exc:
                out.append((name, str(exc)))
            if progress:
                progress(1)
        return out

    def _talent_samples(self, paths: Sequence[str | os.PathLike], kind: str) -> list[NewSample]:
        """Validated samples: a photo must show exactly one face, a voice sample must contain speech."""
        if not paths:
            return []
        det = self.detector(likeness_detector(kind).name)
        samples, problems = [], []
        for p in paths:
            path = display_path(p)
            try:
                f = load(os.fspath(p), self.settings.max_file_bytes)
                if f.media_type != det.modality:
                    raise MediaError(f"a {kind} sample must be {det.modality}, this file is {f.media_type}")
                media = decode(f, self.settings)
            except MediaError as exc:
                problems.append(f"{path}: {exc}")
                continue
            emb = det.embed_references([media])[0]
            if emb.empty:
                problems.append(f"{path}: {emb.note}")
                continue
            samples.append(NewSample(kind, f.sha256, os.path.abspath(path), _thumbnail(media)))
        if problems:
            raise ScannerError("rejected " + "; ".join(problems))
        return samples


def _clearance(value: Clearance | str) -> Clearance:
    try:
        return Clearance(str(getattr(value, "value", value)).strip().lower())
    except ValueError:
        raise ConfigError(
            f"unknown clearance {value!r}; use one of: {', '.join(c.value for c in Clearance)}"
        ) from None


def read_manifest(path: Path, required: str = "path") -> list[dict[str, str]]:
    """Rows of a CSV manifest with lower-cased, stripped keys; ``required`` column must exist."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            if not reader.fieldnames or required not in [f.strip().lower() for f in reader.fieldnames]:
                raise ScannerError(f"{path}: the CSV needs a '{required}' column (found: {reader.fieldnames})")
            return [{(k or "").strip().lower(): (v or "").strip() for k, v in row.items()} for row in reader]
    except FileNotFoundError:
        raise ScannerError(f"manifest not found: {path}") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ScannerError(f"{path} is not a readable CSV file: {exc}") from None
