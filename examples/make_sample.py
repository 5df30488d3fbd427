"""Rebuild the bundled sample (examples/sample/): catalog, derived deliverables and MANIFEST.csv.

    python examples/make_sample.py                      # derive the deliverables from the committed photos
    python examples/make_sample.py --import-sources DIR...   # first re-import the photos themselves

The photos are real, freely licensed images shipped inside packages (scikit-image's ``skimage/data``,
scikit-learn's ``sklearn/datasets/images``); they are committed under ``works/`` (the registered works)
and as the four "original" deliverables. ``--import-sources`` re-creates them from the package files
found in the given folders (an unpacked wheel, or a site-packages). Everything else is derived from
the committed photos deterministically by :func:`derive`, and every file is listed in MANIFEST.csv with
its source, licence, author and what was done to it.

The clearance scenario in catalog.csv (rights holders, uncleared/licensed/owned) is fictional: it is
what the demo plays out, not a statement about the photos' real licences (those are in the manifest).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageEnhance, ImageFont, ImageOps

ROOT = Path(__file__).resolve().parent / "sample"
MAX_SIDE = 1024  # long side of an imported photo
QUALITY = 85  # JPEG quality of an imported photo

SKIMAGE = "scikit-image 0.26.0 (PyPI wheel), skimage/data/"
SKLEARN = "scikit-learn 1.9.1 (PyPI wheel), sklearn/datasets/images/"


@dataclass(frozen=True)
class Photo:
    """One imported photo: where it goes in the sample, where it comes from and under what licence."""

    dest: str  # path under examples/sample
    package_file: str  # file name inside the package folder
    package: str
    origin: str  # where the package says the image came from
    licence: str  # as the package's own documentation states it
    author: str


PHOTOS = [
    Photo("works/rocket_launch.jpg", "rocket.jpg", SKIMAGE,
          "SpaceX photo of the DSCOVR launch on Falcon 9 (flickr.com/photos/spacexphotos/16511594820)",
          "Public domain (released by SpaceX; skimage.data.rocket docstring)", "SpaceX"),
    Photo("works/coffee_cup.jpg", "coffee.png", SKIMAGE, "Coffee cup, courtesy of Pikolo Espresso Bar",
          "CC0 (skimage.data.coffee docstring: 'No copyright restrictions. CC0 by the photographer')",
          "Rachel Michetti"),
    Photo("works/chelsea_the_cat.jpg", "chelsea.png", SKIMAGE, "Chelsea the cat",
          "CC0 (skimage.data.chelsea docstring: 'No copyright restrictions. CC0 by the photographer')",
          "Stefan van der Walt"),
    Photo("works/astronaut_portrait.jpg", "astronaut.png", SKIMAGE,
          "NASA Great Images: astronaut Eileen Collins (flic.kr/p/r9qvLn)",
          "Public domain (skimage.data.astronaut docstring: 'No known copyright restrictions, released into "
          "the public domain')", "NASA"),
    Photo("works/summer_palace_plate.jpg", "china.jpg", SKLEARN,
          "Flickr: flickr.com/photos/danielbuechele/6061409035",
          "CC BY 2.0 (sklearn/datasets/images/README.txt)", "danielbuechele (Flickr)"),
    Photo("works/deep_field.jpg", "hubble_deep_field.jpg", SKIMAGE,
          "Hubble eXtreme Deep Field, HubbleSite release 2012/37",
          "Public domain (NASA; skimage.data.hubble_deep_field docstring)", "NASA"),
    Photo("deliverables/sh050_original_v001.jpg", "flower.jpg", SKLEARN,
          "Flickr: flickr.com/photos/vultilion/6056698931",
          "CC BY 2.0 (sklearn/datasets/images/README.txt)",
          "vultilion (Flickr; the README's attribution line says danielbuechele, its link is vultilion's)"),
    Photo("deliverables/sh051_original_v001.jpg", "camera.png", SKIMAGE, "Camera operator (skimage.data.camera)",
          "CC0 (skimage.data.camera docstring: 'No copyright restrictions. CC0 by the photographer')",
          "Lav Varshney"),
    Photo("deliverables/sh052_original_v001.jpg", "retina.jpg", SKIMAGE,
          "Wikimedia Commons: File:Fundus_photograph_of_normal_left_eye.jpg",
          "CC0 1.0 (skimage.data.retina docstring)", "Mikael Häggström"),
    Photo("deliverables/reel_02/sh060_original_v004.png", "clock_motion.png", SKIMAGE,
          "Motion-blurred wall clock (skimage.data.clock)",
          "Public domain (skimage.data.clock docstring: 'Released into the public domain by the photographer')",
          "Stefan van der Walt"),
]

# path, title, rights holder, clearance: the fictional scenario the demo plays out.
WORKS = [
    ("works/rocket_launch.jpg", "Launch Day (key art)", "Example Pictures Ltd", "uncleared"),
    ("works/coffee_cup.jpg", "Espresso (editorial photograph)", "Estate of A. Photographer", "uncleared"),
    ("works/chelsea_the_cat.jpg", "Chelsea the cat (character reference)", "Toy Co. Inc.", "uncleared"),
    ("works/astronaut_portrait.jpg", "Astronaut portrait (press photo)", "Example Pictures Ltd", "uncleared"),
    ("works/summer_palace_plate.jpg", "Summer Palace background plate", "Our Studio", "owned"),
    ("works/deep_field.jpg", "Deep field (stock image)", "Stock Agency", "licensed"),
]


@dataclass(frozen=True)
class Derived:
    """A deliverable made from a work by :func:`derive`, described for the manifest."""

    dest: str
    work: str
    what: str


DERIVED = [
    Derived("deliverables/sh010_comp_v003.jpg", "works/rocket_launch.jpg",
            "resized to 480 px wide, JPEG quality 45 (a recompressed copy)"),
    Derived("deliverables/sh020_plate_v001.png", "works/coffee_cup.jpg",
            "mirrored left-right, colour saturation x1.6, PNG (a graded copy)"),
    Derived("deliverables/reel_02/sh030_insert_v002.jpg", "works/chelsea_the_cat.jpg",
            "cropped to the central 84% x 88%, resized to 760 x 540, yellow caption 'SCENE 3 - TAKE 2' drawn "
            "top left, JPEG quality 70 (a crop-with-caption copy)"),
    Derived("deliverables/reel_02/sh040_starfield_v001.jpg", "works/deep_field.jpg",
            "resized to 600 px wide, JPEG quality 80 (a copy of a licensed work)"),
]

NOTES = "deliverables/delivery_notes.txt"
MANIFEST_FIELDS = ["file", "source", "licence", "author", "modifications"]


def import_sources(folders: list[Path], root: Path = ROOT) -> None:
    """Write every :data:`PHOTOS` entry from the package file found (recursively) in ``folders``."""
    for photo in PHOTOS:
        src = _find(photo.package_file, folders)
        img = Image.open(src)
        img = img.convert("L" if img.mode in ("L", "I;16", "1") else "RGB")
        img.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)  # only ever shrinks
        dest = root / photo.dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.suffix == ".png":
            img.save(dest, optimize=True)
        else:
            img.save(dest, quality=QUALITY)
        print(f"{dest.relative_to(root)} <- {src} ({hashlib.sha256(src.read_bytes()).hexdigest()[:12]})")


def _find(name: str, folders: list[Path]) -> Path:
    """The first file called ``name`` below one of ``folders``."""
    for folder in folders:
        for hit in sorted(folder.rglob(name)):
            if hit.is_file():
                return hit
    raise SystemExit(f"{name} not found under {', '.join(map(str, folders))} (unpack the scikit-image and "
                     "scikit-learn wheels there, e.g. `pip download --no-deps scikit-image` then unzip)")


def derive(root: Path = ROOT) -> None:
    """Write the catalog, the derived deliverables, the sidecar note and MANIFEST.csv from the works in ``root``."""
    deliv = root / "deliverables"
    (deliv / "reel_02").mkdir(parents=True, exist_ok=True)
    with open(root / "catalog.csv", "w", newline="") as fh:
        wr = csv.writer(fh)
        wr.writerow(["path", "title", "rights_holder", "clearance"])
        wr.writerows(WORKS)

    def work(path: str) -> Image.Image:
        return Image.open(root / path).convert("RGB")

    rocket = work("works/rocket_launch.jpg")
    rocket.resize((480, round(480 * rocket.height / rocket.width)), Image.Resampling.LANCZOS).save(
        root / DERIVED[0].dest, quality=45)
    graded = ImageEnhance.Color(ImageOps.mirror(work("works/coffee_cup.jpg"))).enhance(1.6)
    graded.save(root / DERIVED[1].dest, optimize=True)
    cat = work("works/chelsea_the_cat.jpg")
    w, h = cat.size
    crop = cat.crop((round(0.08 * w), round(0.06 * h), round(0.92 * w), round(0.94 * h)))
    crop = crop.resize((760, 540), Image.Resampling.LANCZOS)
    ImageDraw.Draw(crop).text((30, 30), "SCENE 3 - TAKE 2", fill=(255, 255, 0),
                              font=ImageFont.load_default(size=36))
    crop.save(root / DERIVED[2].dest, quality=70)
    stars = work("works/deep_field.jpg")
    stars.resize((600, round(600 * stars.height / stars.width)), Image.Resampling.LANCZOS).save(
        root / DERIVED[3].dest, quality=80)
    (root / NOTES).write_text("Sidecar file: not media, skipped by the scan.\n")
    write_manifest(root)


def manifest_rows() -> list[dict[str, str]]:
    """One row per file of the sample: the imported photos, the derived copies and the project's own files."""
    rows = []
    for p in PHOTOS:
        rows.append({"file": p.dest, "source": f"{p.package}{p.package_file}; originally: {p.origin}",
                     "licence": p.licence, "author": p.author,
                     "modifications": f"decoded, shrunk to at most {MAX_SIDE} px on the long side if larger, "
                                      + ("saved as PNG" if p.dest.endswith(".png") else f"saved as JPEG quality {QUALITY}")})
    by_dest = {p.dest: p for p in PHOTOS}
    for d in DERIVED:
        p = by_dest[d.work]
        rows.append({"file": d.dest, "source": f"{d.work} (this sample), made by examples/make_sample.py",
                     "licence": f"as {d.work}: {p.licence}", "author": p.author, "modifications": d.what})
    own = "written for this sample by examples/make_sample.py"
    rows.append({"file": "catalog.csv", "source": own, "licence": "project file", "author": "scanner project",
                 "modifications": "fictional clearance scenario for the demo (not the photos' real licences)"})
    rows.append({"file": NOTES, "source": own, "licence": "project file", "author": "scanner project",
                 "modifications": "a non-media sidecar the scan must skip"})
    rows.append({"file": "MANIFEST.csv", "source": own, "licence": "project file", "author": "scanner project",
                 "modifications": "this list"})
    return rows


def write_manifest(root: Path = ROOT) -> None:
    """Write MANIFEST.csv (file, source, licence, author, modifications) into ``root``."""
    with open(root / "MANIFEST.csv", "w", newline="") as fh:
        wr = csv.DictWriter(fh, fieldnames=MANIFEST_FIELDS)
        wr.writeheader()
        wr.writerows(manifest_rows())


def main() -> None:
    """Command line: optionally re-import the photos, then derive the rest."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--import-sources", nargs="+", type=Path, metavar="DIR",
                    help="folders holding skimage/data and sklearn/datasets/images (unpacked wheels)")
    args = ap.parse_args()
    if args.import_sources:
        import_sources(args.import_sources)
    derive()


if __name__ == "__main__":
    main()
