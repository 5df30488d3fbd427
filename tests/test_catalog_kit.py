"""The catalog contract kit over both backends: SQLite on local disk and a real PostgreSQL server.

The PostgreSQL half uses ``SCANNER_TEST_PG_URL`` when set (``.ci/run`` sets it), else starts a
throw-away cluster, and skips with the reason only when no server can be started here.
"""

from __future__ import annotations

import uuid

import pytest

from scanner.catalog import Catalog
from scanner.testing.catalog_kit import CatalogKit, pg_base_url, pg_schema_url
from scanner.testing.pg_cluster import ClusterUnavailable


@pytest.fixture(scope="session")
def pg_url() -> str:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("PostgreSQL half skipped: psycopg is not installed (pip install 'scanner[postgres]')")
    try:
        return pg_base_url()
    except ClusterUnavailable as exc:
        pytest.skip(f"PostgreSQL half skipped: no server could be started ({exc}); set SCANNER_TEST_PG_URL")


@pytest.fixture(params=["sqlite", "postgresql"])
def kit(request, tmp_path) -> CatalogKit:
    if request.param == "sqlite":
        target = tmp_path / "catalog.db"
    else:
        target = pg_schema_url(request.getfixturevalue("pg_url"), f"kit_{uuid.uuid4().hex[:12]}")
    return CatalogKit(lambda: Catalog(target))


@pytest.mark.parametrize("check", CatalogKit.CHECKS)
def test_catalog_contract(kit: CatalogKit, check: str) -> None:
    getattr(kit, f"check_{check}")()
