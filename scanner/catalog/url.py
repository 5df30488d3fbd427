"""Which backend a catalog setting names: a file path (SQLite) or a ``postgresql://`` URL.

Kept free of driver imports so ``scanner.config`` can use it without loading a database driver.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from scanner.errors import ConfigError

PG_SCHEMES = ("postgresql", "postgres")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def is_catalog_url(value: object) -> bool:
    """True when ``value`` is a PostgreSQL URL (``postgresql://...`` or ``postgres://...``)."""
    m = _SCHEME.match(str(value)) if isinstance(value, str) else None
    return bool(m) and m.group(1).lower() in PG_SCHEMES


def catalog_target(value: object) -> Path | str:
    """A catalog setting as a ``Path`` (SQLite) or a URL string (PostgreSQL).

    A ``Path`` would fold the ``//`` of a URL, so URLs stay strings; any other ``scheme://``
    is a mistake, not a file name."""
    text = os.fspath(value) if isinstance(value, os.PathLike) else str(value)
    m = _SCHEME.match(text)
    if m:
        if m.group(1).lower() not in PG_SCHEMES:
            raise ConfigError(f"catalog URL scheme '{m.group(1)}' is not supported: use a file path for SQLite "
                              "or postgresql://user@host/dbname for PostgreSQL")
        return text
    return Path(os.path.expanduser(text))


def redact(url: str) -> str:
    """The URL without its password, for messages and listings."""
    url = re.sub(r"(://[^/@?#]*?:)[^/@?#]*@", r"\1***@", url)
    return re.sub(r"([?&]password=)[^&#]*", r"\1***", url)


def describe(target: Path | str) -> str:
    """How messages name a catalog."""
    return redact(target) if is_catalog_url(target) else str(target)
