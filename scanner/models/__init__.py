"""Models: the registry (``models/*.json``), installed weights, and ``resolve(settings, detector)``.

Kept light: importing this package loads no detector and no model framework.
"""

from scanner.models.resolve import ResolvedModel, model_name, resolve
from scanner.models.weights import ModelSpec, get_spec, registry

__all__ = ["ModelSpec", "ResolvedModel", "get_spec", "model_name", "registry", "resolve"]
