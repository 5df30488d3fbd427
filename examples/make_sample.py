"""Regenerate the bundled sample catalog and deliverables (procedural art, no third-party content).

    python examples/make_sample.py

Works are drawn from seeded random shapes; deliverables are edited copies of some works
(resize + JPEG, mirror + colour grade, crop + caption, a licensed work) and original images.
"""

from __future__ import annotations

import csv
from pathlib import Path

from PIL import ImageDraw, ImageEnhance, ImageFont, ImageOps

from scanner.testing.fixtures import artwork

ROOT = Path(__file__).resolve().parent / "sample"

WORKS = [
    ("neon_city_poster", "Neon City (key art)", "Example Pictures Ltd", "uncleared"),
    ("harbour_at_dusk", "Harbour at Dusk (painting)", "Estate of A. Painter", "uncleared"),
    ("robot_mascot", "Robo the Mascot (character sheet)", "Toy Co. Inc.", "uncleared"),
    ("forest_plate", "Forest background plate", "Our Studio", "owned"),
    ("festival_logo", "Festival logo artwork", "Festival Org", "licensed"),
    ("desert_matte", "Desert matte painting", "Matte House", "uncleared"),
]


def main() -> None:
    works_dir, deliv = ROOT / "works", ROOT / "deliverables"
    for d in (works_dir, deliv, deliv / "reel_02"):
        d.mkdir(parents=True, exist_ok=True)
    imgs = {}
    with open(ROOT / "catalog.csv", "w", newline="") as fh:
        wr = csv.writer(fh)
        wr.writerow(["path", "title", "rights_holder", "clearance"])
        for i, (slug, title, holder, clearance) in enumerate(WORKS):
            img = artwork(100 + i)
            img.save(works_dir / f"{slug}.jpg", quality=90)
            imgs[slug] = img
            wr.writerow([f"works/{slug}.jpg", title, holder, clearance])
    # Copies a generator might produce.
    imgs["neon_city_poster"].resize((480, 320)).save(deliv / "sh010_comp_v003.jpg", quality=45)
    graded = ImageEnhance.Color(ImageOps.mirror(imgs["harbour_at_dusk"])).enhance(1.6)
    graded.save(deliv / "sh020_plate_v001.png")
    robot = imgs["robot_mascot"]
    crop = robot.crop((40, 30, 740, 490)).resize((700, 460))
    ImageDraw.Draw(crop).text((30, 30), "SCENE 3 - TAKE 2", fill=(255, 255, 0), font=ImageFont.load_default(size=36))
    crop.save(deliv / "reel_02" / "sh030_insert_v002.jpg", quality=70)
    imgs["festival_logo"].resize((600, 400)).save(deliv / "reel_02" / "sh040_logo_v001.jpg", quality=80)
    # Original material.
    for n, seed in enumerate((901, 902, 903)):
        artwork(seed).save(deliv / f"sh05{n}_original_v001.jpg", quality=85)
    artwork(904).save(deliv / "reel_02" / "sh060_original_v004.png")
    (deliv / "delivery_notes.txt").write_text("Sidecar file: not media, skipped by the scan.\n")


if __name__ == "__main__":
    main()
