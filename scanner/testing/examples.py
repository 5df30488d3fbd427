"""Small example media per detector, for the detector contract kit (``scanner.testing.detector_kit``).

Every detector gets an ``Examples``: an ``original`` to index, a transformed ``copy`` of it that
the detector must match at its calibrated review level, an ``unrelated`` item it must not match,
and (where the detector defines one) ``blank`` media it turns into an empty embedding with a note.
Example data is looked up by detector name first, then by the detector's modality, so a new image
or audio detector is tested with the generic image/music examples until it registers its own
(``@examples_for("image.new")``). Media are generated (``fixtures.artwork``, ``audio.synth_music``) or read
from small freely licensed files: ``examples/sample/works`` (photos), ``tests/fixtures`` (faces, voices).

Anchor: ThreatExchange's ``SignalTypeAutoTest`` (each signal type supplies its own known matches and
non-matches; the checks are shared).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image, ImageOps

from scanner.config import REPO_ROOT
from scanner.testing.fixtures import artwork

FIXTURES = REPO_ROOT / "tests" / "fixtures"
SAMPLE_WORKS = REPO_ROOT / "examples" / "sample" / "works"
SR = 16_000


class ExampleUnavailable(RuntimeError):
    """The example data for a detector cannot be built here (a fixture file is missing)."""


@dataclass(frozen=True)
class Examples:
    """Media for one detector's contract checks (PIL images or ``AudioClip`` per modality)."""

    original: Any
    copy: Any  # a transformed copy of ``original``: must reach the calibrated review level
    unrelated: Any  # must stay below it
    blank: Any | None = None  # gives an empty embedding with a note; None where the detector has no such input
    more: tuple[Any, ...] = ()  # further items for determinism and batch == single (odd sizes, several faces)
    source: str = ""  # where the examples came from (shown in failure messages)

    @property
    def batch(self) -> list[Any]:
        """Every item, for the determinism and batch == single checks."""
        items = [self.original, self.copy, self.unrelated, *self.more]
        return items + ([self.blank] if self.blank is not None else [])


_BY_NAME: dict[str, Callable[[], Examples]] = {}
_BY_MODALITY: dict[str, Callable[[], Examples]] = {}


def examples_for(name: str) -> Callable[[Callable[[], Examples]], Callable[[], Examples]]:
    """Register an example factory for detector ``name`` (or ``modality:<m>`` for a modality default)."""

    def wrap(fn: Callable[[], Examples]) -> Callable[[], Examples]:
        table, key = (_BY_MODALITY, name.split(":", 1)[1]) if name.startswith("modality:") else (_BY_NAME, name)
        if key in table:
            raise ValueError(f"examples for {name!r} are already registered")
        table[key] = fn
        return fn

    return wrap


@lru_cache(maxsize=None)
def examples(name: str, modality: str) -> Examples:
    """Example data for detector ``name``: its own, else its modality's default.

    Raises ``ExampleUnavailable`` when there is none or a fixture it needs is missing."""
    factory = _BY_NAME.get(name) or _BY_MODALITY.get(modality)
    if factory is None:
        raise ExampleUnavailable(
            f"no example data for {name} (modality {modality!r}); register a factory with "
            f"@examples_for({name!r}) in scanner/testing/examples.py")
    return factory()


def has_own_examples(name: str) -> bool:
    """True when ``name`` registered its own examples (not the modality default)."""
    return name in _BY_NAME


# ------------------------------------------------------------------ helpers


def jpeg(img: Image.Image, quality: int) -> Image.Image:
    """``img`` after a JPEG round trip at ``quality``."""
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def work(seed: int, size: tuple[int, int] = (512, 384)) -> Image.Image:
    """A fixture artwork without its "OPUS nnn" title band (shared lettering would match across works)."""
    return artwork(seed, size).crop((0, 0, size[0], size[1] - 70))


def _with_alpha(img: Image.Image) -> Image.Image:
    """``img`` as RGBA, transparent outside an inset rectangle (exercises the alpha paths)."""
    rgba = img.convert("RGBA")
    alpha = Image.new("L", img.size, 0)
    alpha.paste(255, (img.width // 10, img.height // 10, img.width * 9 // 10, img.height * 9 // 10))
    rgba.putalpha(alpha)
    return rgba


def photo(name: str, side: int = 384) -> Image.Image:
    """A freely licensed photo from ``examples/sample/works``, shrunk to ``side`` px on its long side."""
    path = SAMPLE_WORKS / name
    if not path.is_file():
        raise ExampleUnavailable(f"sample photo {path} is missing")
    img = Image.open(path).convert("RGB")
    img.thumbnail((side, side), Image.Resampling.LANCZOS)
    return img


def _fixture(*parts: str) -> Path:
    path = FIXTURES.joinpath(*parts)
    if not path.is_file():
        raise ExampleUnavailable(f"fixture {path} is missing")
    return path


def _clip(samples: np.ndarray, sr: int = SR):
    from scanner.media.audio import AudioClip

    return AudioClip(np.asarray(samples, np.float32), sr)


def _noisy(x: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    power = float(np.mean(x ** 2)) or 1e-12
    return (x + rng.normal(0, np.sqrt(power / 10 ** (snr_db / 10)), x.size)).astype(np.float32)


# ------------------------------------------------------------------ defaults per modality


@examples_for("modality:image")
def _image() -> Examples:
    """Real photos, 384 px: the cat; its copy scaled to 80 % and JPEG-compressed at quality 85 (mild
    enough for the random-weight test model ``clip-test-tiny``, calibrated at cosine 0.9998); the coffee
    cup is unrelated. (Procedural artworks are poor negatives for a copy descriptor: ``image.sscd``
    scores two unrelated ones 0.5-0.6, against 0.0 for unrelated photos.)"""
    original = photo("chelsea_the_cat.jpg")
    small = original.resize((original.width * 4 // 5, original.height * 4 // 5), Image.Resampling.BICUBIC)
    return Examples(
        original=original, copy=jpeg(small, 85), unrelated=photo("coffee_cup.jpg"),
        blank=Image.new("RGB", (256, 256), (128, 128, 128)),
        more=(_with_alpha(photo("rocket_launch.jpg")), work(13, (300, 410))),
        source="examples/sample/works (see its MANIFEST.csv) and a generated artwork",
    )


@examples_for("modality:audio")
def _music() -> Examples:
    """A 12 s synthetic piece; its copy is a 6 s excerpt under white noise at 10 dB SNR."""
    from scanner.testing.audio import synth_music

    x = synth_music(21, 12.0, SR)
    return Examples(
        original=_clip(x), copy=_clip(_noisy(x[3 * SR: 9 * SR], 10.0)),
        unrelated=_clip(synth_music(22, 8.0, SR)),
        blank=_clip(np.zeros(3 * SR, np.float32)),
        more=(_clip(synth_music(23, 2.5, SR)),),
        source="generated music (scanner.testing.audio.synth_music)",
    )


# ------------------------------------------------------------------ detectors with their own media


@examples_for("image.clip")
def _clip_examples() -> Examples:
    """As the image default, but CLIP embeds a flat image like any other: no blank case."""
    base = _image()
    return Examples(base.original, base.copy, base.unrelated, None, base.more + (base.blank,), base.source)


@examples_for("image.face")
def _faces() -> Examples:
    """Person A's photo; its copy is scaled to 80 %, mirrored and JPEG-compressed at quality 40; person B is
    unrelated."""
    face = lambda name: Image.open(_fixture("faces", f"{name}.jpg")).convert("RGB")  # noqa: E731
    a = face("person_a_1")
    copy = jpeg(ImageOps.mirror(a.resize((a.width * 4 // 5, a.height * 4 // 5), Image.Resampling.BICUBIC)), 40)
    return Examples(
        original=a, copy=copy, unrelated=face("person_b_1"),
        blank=Image.new("RGB", (320, 240), (128, 128, 128)),
        more=(face("group_two"),),
        source="tests/fixtures/faces",
    )


@examples_for("audio.voice")
def _voices() -> Examples:
    """Speaker A's utterance; its copy is the same clip 12 dB quieter under noise at 20 dB SNR; speaker B is unrelated."""
    from scanner.media.audio import decode_audio

    voice = lambda name: decode_audio(_fixture("voices", f"{name}.flac").read_bytes(), SR)  # noqa: E731
    a = voice("speaker_a_1")
    return Examples(
        original=a, copy=_clip(_noisy(0.25 * a.samples, 20.0)), unrelated=voice("speaker_b_1"),
        blank=_clip(np.zeros(3 * SR, np.float32)),
        more=(voice("speaker_b_2"),),
        source="tests/fixtures/voices (LibriSpeech, CC BY 4.0)",
    )


def melody_tune(seed: int, n_notes: int = 48) -> list[tuple[float, int]]:
    """A random-walk tune in a major scale: (duration in beats, MIDI pitch) per note."""
    rng = np.random.default_rng(seed)
    major = np.array([0, 2, 4, 5, 7, 9, 11])
    degree, out = 7, []
    for _ in range(n_notes):
        degree = int(np.clip(degree + rng.choice([-3, -2, -1, -1, 1, 1, 2, 3, 4]), 0, 13))
        out.append((float(rng.choice([0.5, 0.5, 1.0, 1.0, 1.5, 2.0])), int(60 + 12 * (degree // 7) + major[degree % 7])))
    return out


def render_tune(tune: list[tuple[float, int]], beat_s: float = 0.3, shift: int = 0, bright: bool = False,
                sr: int = SR) -> np.ndarray:
    """A tune as mono float32 audio: additive harmonic tones (``bright``: more, slower-decaying partials)."""
    total = sum(d for d, _ in tune) * beat_s + 0.5
    out = np.zeros(int(total * sr), np.float64)
    harm = (1.0, 0.8, 0.6, 0.45, 0.3, 0.2) if bright else (1.0, 0.35, 0.12)
    t = 0.0
    for beats, pitch in tune:
        dur = beats * beat_s
        f0 = 440.0 * 2 ** ((pitch + shift - 69) / 12)
        tt = np.arange(int(dur * sr)) / sr
        env = np.minimum(1.0, tt / 0.01) * np.exp(-tt / (0.6 if bright else 1.5)) * np.clip((dur - tt) / 0.02, 0, 1)
        tone = sum(h * np.sin(2 * np.pi * (k + 1) * f0 * tt) for k, h in enumerate(harm) if (k + 1) * f0 < sr / 2.2)
        a = int(t * sr)
        out[a:a + tt.shape[0]] += env * tone
        t += dur
    return (0.5 * out / (np.max(np.abs(out)) or 1.0)).astype(np.float32)


@examples_for("audio.melody")
def _melodies() -> Examples:
    """A 48-note tune; its copy is re-played with brighter tones, 2 semitones higher and 10 % faster, under noise
    at 20 dB SNR; another tune is unrelated; a single sustained tone is blank (no melody)."""
    tune = melody_tune(31)
    tone = (0.3 * np.sin(2 * np.pi * 440.0 * np.arange(6 * SR) / SR)).astype(np.float32)
    return Examples(
        original=_clip(render_tune(tune)),
        copy=_clip(_noisy(render_tune(tune, beat_s=0.3 / 1.1, shift=2, bright=True), 20.0)),
        unrelated=_clip(render_tune(melody_tune(32))),
        blank=_clip(tone),
        more=(_clip(render_tune(melody_tune(33, 20), beat_s=0.25)),),
        source="generated tunes (scanner.testing.examples.melody_tune/render_tune)",
    )
