"""Reference metadata: works (and later talent and consent) behind a narrow interface."""

from scanner.catalog.sqlite import Catalog, NewWork
from scanner.catalog.talent import NewSample

__all__ = ["Catalog", "NewWork", "NewSample"]
