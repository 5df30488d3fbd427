"""Reference metadata: works, talent, consent, API keys and the audit trail behind one narrow interface.

``Catalog(path)`` is the embedded SQLite catalog; ``Catalog("postgresql://...")`` a shared
PostgreSQL one (``pip install 'scanner[postgres]'``)."""

from scanner.catalog.base import SCHEMA_VERSION, Catalog, NewWork
from scanner.catalog.talent import NewSample
from scanner.catalog.url import catalog_target, is_catalog_url

__all__ = ["Catalog", "NewWork", "NewSample", "SCHEMA_VERSION", "catalog_target", "is_catalog_url"]
