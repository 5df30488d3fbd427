"""Reference metadata: works, talent, consent, API keys and the audit trail behind one narrow interface.

``Catalog(path)`` is the embedded SQLite catalog; ``Catalog("postgresql://...")`` a shared
PostgreSQL one (``pip install 'scanner[postgres]'``).

Names are resolved on first use, so ``scanner.catalog.url`` (which settings need) can be imported
without loading the catalog code (``scanner --help`` stays fast).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Catalog": "scanner.catalog.base", "NewWork": "scanner.catalog.base", "SCHEMA_VERSION": "scanner.catalog.base",
    "NewSample": "scanner.catalog.talent",
    "catalog_target": "scanner.catalog.url", "is_catalog_url": "scanner.catalog.url",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'scanner.catalog' has no attribute {name!r}")
