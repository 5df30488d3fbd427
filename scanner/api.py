"""The one place that wires media → detectors → indexes → catalog → policy.

    from scanner.api import Scanner
    scanner = Scanner()                      # settings from CLI/env/scanner.toml defaults
    scanner.add_reference(["poster.jpg"], title="Poster", rights_holder="Studio X")
    scanner.build_index()
    result = scanner.check("generated.png")  # AssetResult with verdict and findings

Each job lives in its own module: registration in ``scanner.intake``, index maintenance in
``scanner.indexing``, checking in ``scanner.scanning``; consent and verdicts in ``scanner.policy``;
shards, resume and engines in ``scanner.jobs``. ``Scanner`` holds the shared state (settings,
catalog, index store, loaded detectors and calibration) they all read.
"""

from __future__ import annotations

from scanner.catalog import Catalog
from scanner.config import Settings, load_settings
from scanner.detectors import Detector, create
from scanner.index import IndexStore, VectorIndex
from scanner.index.store import Manifest
from scanner.indexing import IndexReport, Indexing
from scanner.intake import AddOutcome, Intake, Progress, read_manifest
from scanner.policy import Calibration, load_calibration
from scanner.scanning import AuditLabel, Scanning

__all__ = ["Scanner", "AddOutcome", "AuditLabel", "IndexReport", "Progress", "read_manifest"]


class Scanner(Intake, Indexing, Scanning):
    """Register references, keep indexes current and check assets against them."""

    def __init__(self, settings: Settings | None = None, caller: str = "api"):
        """``caller`` is who asks (``cli:<user>``, ``key:<id>``); every answer is written to the audit trail."""
        self.settings = settings or load_settings()
        self.caller = caller
        self.catalog = Catalog(self.settings.catalog)
        self.store = IndexStore(self.settings.index_dir)
        self._detectors: dict[str, Detector] | None = None
        self._loaded: dict[str, Detector] = {}
        self._indexes: dict[str, tuple[VectorIndex, Manifest]] = {}
        self._synced: tuple | None = None  # catalog state and detectors of the last full index sync
        self._calibration: Calibration | None = None

    @property
    def detectors(self) -> dict[str, Detector]:
        """Enabled detectors, models loaded on first use."""
        if self._detectors is None:
            self._detectors = {name: self.detector(name) for name in self.settings.detectors}
        return self._detectors

    def detector(self, name: str) -> Detector:
        """Any registered detector (enabled or not), loaded once."""
        if name not in self._loaded:
            self._loaded[name] = create(name, self.settings)
        return self._loaded[name]

    @property
    def calibration(self) -> Calibration:
        if self._calibration is None:
            self._calibration = load_calibration(self.settings.calibration)
        return self._calibration
