"""One small store per concept: the only SQL outside the catalog's connection, schema and
migrations (``casdesk.core.project.connection``, ``.schema``, ``.catalog``).

A :class:`~casdesk.core.project.catalog.Catalog` exposes them as attributes
(``catalog.runs``, ``catalog.predictions``, ``catalog.splits``, ``catalog.label_records``,
``catalog.mask_records``, ``catalog.tile_rows``, ``catalog.qc``, ``catalog.suspects``, ``catalog.crops``); every method is typed and joins the
caller's transaction when it runs inside ``with catalog.transaction():``.
``tests/core/test_store_boundary.py`` fails when SQL appears anywhere else.
"""

from casdesk.core.project.stores.crops import CropLock, CropsStore, DroppedTiles
from casdesk.core.project.stores.labels import LabelRecords, MaskRecords
from casdesk.core.project.stores.predictions import PredictionRow, PredictionsStore, TilePrediction
from casdesk.core.project.stores.qc import QcRecords, SuspectRow, SuspectsStore
from casdesk.core.project.stores.runs import RunRow, RunsStore
from casdesk.core.project.stores.splits import SplitRow, SplitsStore
from casdesk.core.project.stores.tiles import TileRows

__all__ = [
    "CropLock",
    "CropsStore",
    "DroppedTiles",
    "LabelRecords",
    "MaskRecords",
    "PredictionRow",
    "PredictionsStore",
    "QcRecords",
    "RunRow",
    "RunsStore",
    "SplitRow",
    "SplitsStore",
    "SuspectRow",
    "SuspectsStore",
    "TilePrediction",
    "TileRows",
]
