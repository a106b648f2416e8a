"""The project's summary for ``casdesk info`` (and the GUI's project page): scenes,
subdatasets with their tile counts and labelled fraction, the schema version."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from casdesk.core.project.catalog import Catalog


def project_summary(catalog: Catalog) -> dict[str, Any]:
    """Scenes, subdatasets with tile counts and labelled fraction, for `casdesk info`."""
    subs = []
    for r in catalog.query(
        "SELECT d.name, d.sensor, d.resolution_m, d.region,"
        " COUNT(t.id) AS tiles,"
        " SUM(CASE WHEN t.label_pixels > 0 THEN 1 ELSE 0 END) AS labelled_tiles,"
        " SUM(t.label_pixels) AS label_pixels, SUM(t.valid_pixels) AS valid_pixels"
        " FROM subdatasets d LEFT JOIN tiles t ON t.subdataset_id = d.id"
        " GROUP BY d.id ORDER BY d.name"
    ):
        valid = r["valid_pixels"] or 0
        subs.append(
            {
                "name": r["name"],
                "sensor": r["sensor"],
                "resolution_m": r["resolution_m"],
                "region": r["region"],
                "tiles": r["tiles"],
                "labelled_tiles": r["labelled_tiles"] or 0,
                "labelled_fraction": (r["label_pixels"] or 0) / valid if valid else 0.0,
            }
        )
    scenes = [
        {
            "id": s.id,
            "name": s.name,
            "path": str(s.path),
            "size": [s.width, s.height],
            "bands": s.bands,
            "dtype": s.dtype,
            "crs": _short_crs(s.crs),
            "sensor": s.sensor,
            "subdataset": s.subdataset,
            "labels": int(
                catalog.execute("SELECT COUNT(*) FROM labels WHERE scene_id = ?", (s.id,)).fetchone()[0]
            ),
            "tiles": int(
                catalog.execute("SELECT COUNT(*) FROM tiles WHERE scene_id = ?", (s.id,)).fetchone()[0]
            ),
            "crop": catalog.crop_state(s.id),
        }
        for s in catalog.scenes()
    ]
    total_valid = sum(
        (r[1] or 0) for r in catalog.query("SELECT 1, SUM(valid_pixels) FROM tiles")
    )
    total_label = sum((r[1] or 0) for r in catalog.query("SELECT 1, SUM(label_pixels) FROM tiles"))
    return {
        "project": str(catalog.path),
        "schema_version": catalog.schema_version,
        "scenes": scenes,
        "subdatasets": subs,
        "tiles": catalog.tile_count(),
        "labelled_fraction": total_label / total_valid if total_valid else 0.0,
    }



def _short_crs(wkt: str | None) -> str | None:
    if not wkt:
        return None
    try:
        from rasterio.crs import CRS

        crs = CRS.from_wkt(wkt)
        epsg = crs.to_epsg()
        return f"EPSG:{epsg}" if epsg else crs.to_string()[:60]
    except Exception:  # noqa: BLE001 - a display string only
        return wkt[:60]

