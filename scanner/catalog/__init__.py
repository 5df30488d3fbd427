"""Reference metadata: works (and later talent and consent) behind a narrow interface."""

from scanner.catalog.sqlite import Catalog, NewWork

__all__ = ["Catalog", "NewWork"]
