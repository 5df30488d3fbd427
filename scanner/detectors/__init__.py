"""Detectors turn media into comparable signals and declare their metric."""

from scanner.detectors.base import Detector, Embedding, Hit, VectorDetector, create, detector_names, register

__all__ = ["Detector", "Embedding", "Hit", "VectorDetector", "create", "detector_names", "register"]
