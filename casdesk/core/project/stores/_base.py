"""The common base of the stores: a handle on the catalog whose connection they use."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from casdesk.core.project.catalog import Catalog


class Store:
    """A store borrows its catalog's connection, lock and transactions (never its own)."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
