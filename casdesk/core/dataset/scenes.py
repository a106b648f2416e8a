"""Adding a scene (and its labels) to a project."""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from casdesk.core.errors import LabelError, SceneError
from casdesk.core.labels.io import (
    RASTER_SUFFIXES,
    LabelSet,
    mask_to_polygons,
    pixel_to_crs,
    read_label_raster,
    read_vector_labels,
)
from casdesk.core.project.catalog import Catalog, Scene, is_project_file
from casdesk.core.raster.io import RasterInfo, check_scene

if TYPE_CHECKING:
    from shapely.geometry.base import BaseGeometry

log = logging.getLogger(__name__)


@dataclass
class AddedScene:
    scene_id: int
    info: RasterInfo
    labels: int = 0
    messages: list[str] = field(default_factory=list)


def read_labels_for_scene(
    path: str | Path,
    info: RasterInfo,
    label_names: Collection[str] | None = None,
    label_field: str | None = None,
) -> LabelSet:
    """Labels from a vector file, a label raster on the scene grid, or a LabelMe JSON."""
    p = Path(path)
    if is_project_file(p):  # OGR would open (and close) the live database: never
        raise LabelError("this is a casdesk project file, not a label file", p,
                         "pass a vector file, a label raster or a LabelMe JSON")
    suffix = p.suffix.lower()
    if suffix == ".json" and _looks_like_labelme(p):
        from casdesk.core.labels.labelme import labelme_mask, read_labelme

        doc = read_labelme(p)
        if doc.imageWidth and doc.imageHeight and (doc.imageWidth, doc.imageHeight) != (info.width, info.height):
            raise LabelError(
                f"the LabelMe file is for a {doc.imageWidth}x{doc.imageHeight} image, "
                f"the scene is {info.width}x{info.height}",
                p,
            )
        # through a mask, so LabelMe's own rules hold (outline filled, later shapes win)
        mask = labelme_mask(doc, label_names, shape=(info.height, info.width))
        out = LabelSet()
        for poly in mask_to_polygons(mask):
            out.labels.append(_label(poly, info, "landslide", p.name))
        if not out.labels:
            out.messages.append("warning: the LabelMe file has no shape with a selected label")
        for poly in mask_to_polygons(mask, value=255):  # __ignore__ shapes stay ignored (255)
            out.labels.append(_label(poly, info, "__ignore__", p.name))
        return out
    if suffix in RASTER_SUFFIXES:
        mask = read_label_raster(p, expected_shape=(info.height, info.width))
        out = LabelSet()
        for poly in mask_to_polygons(mask):
            out.labels.append(_label(poly, info, "landslide", p.name))
        if not out.labels:
            out.messages.append("warning: the label raster has no landslide pixel")
        for poly in mask_to_polygons(mask, value=255):  # the raster's nodata: ignore (255), never landslide
            out.labels.append(_label(poly, info, "__ignore__", p.name))
        return out
    return read_vector_labels(p, info, label_names=label_names, label_field=label_field)


def _label(poly: BaseGeometry, info: RasterInfo, name: str, source_file: str) -> dict[str, Any]:
    return {
        "name": name,
        "geometry_px": poly.wkt,
        "geometry_crs": pixel_to_crs(poly, info.transform).wkt if info.crs_wkt else None,
        "attributes": {"source_file": source_file},
    }


def same_file_scenes(catalog: Catalog, path: Path) -> list[Scene]:
    """Scenes of the project that are this very file (same path, or the same inode
    through another path or a link)."""
    if not path.exists():
        return []
    out = []
    for scene in catalog.scenes():
        try:
            if scene.path == path or scene.path.samefile(path):
                out.append(scene)
        except OSError:
            continue
    return out


def _looks_like_labelme(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8") as fh:
            head = fh.read(4096)
    except OSError:
        return False
    return '"shapes"' in head


def add_scene(
    catalog: Catalog,
    path: str | Path,
    *,
    labels: str | Path | None = None,
    label_names: Collection[str] | None = None,
    label_field: str | None = None,
    subdataset: str | None = None,
    sensor: str | None = None,
    resolution_m: float | None = None,
    acquired: str | None = None,
    source: str | None = None,
    licence: str | None = None,
    name: str | None = None,
    allow_duplicate: bool = False,
) -> AddedScene:
    """Check a scene is readable, read its labels, and store both in one transaction.

    Nothing is written when the scene or its labels are unusable. The same file added
    again is refused unless ``allow_duplicate``; a scene whose file name another scene
    already has (drone software names every mosaic ``odm_orthophoto.tif``) gets a unique
    name (``NAME-2``, ...; or ``name``) and a warning, so its tiles never overwrite the
    other scene's.
    """
    p = Path(path).absolute()
    same = same_file_scenes(catalog, p)
    if same and not allow_duplicate:
        raise SceneError(
            f"this file is already scene {same[0].id} ({same[0].name}) of the project",
            p,
            "to add it again anyway, use --allow-duplicate",
        )
    info = check_scene(p)
    if name is not None:
        name = name.strip()
        if not name or "/" in name or "\\" in name:
            raise SceneError(f"{name!r} cannot be a scene name (empty, or with a slash)", p)
        if any(s.name == name for s in catalog.scenes()):
            raise SceneError(f"a scene named {name!r} already exists", p, "pick another --name")
    unique = name or catalog.unique_scene_name(p.stem)
    label_set = read_labels_for_scene(labels, info, label_names, label_field) if labels else LabelSet()
    resolution = resolution_m if resolution_m is not None else info.resolution_m()
    with catalog.transaction():
        scene_id = catalog.add_scene(
            p,
            crs=info.crs_wkt,
            transform=tuple(info.transform)[:6],
            width=info.width,
            height=info.height,
            bands=info.count,
            dtype=info.dtype,
            nodata=info.nodata,
            sensor=sensor,
            resolution_m=resolution,
            subdataset=subdataset or unique,
            acquired=acquired,
            source=source,
            licence=licence,
            name=unique,
        )
        if label_set.labels:
            catalog.add_labels(label_set.labels, scene_id=scene_id, source="imported")
    messages = list(label_set.messages)
    if same:
        messages.append(f"warning: the same file is also scene {same[0].id} ({same[0].name}); "
                        f"added again as {unique!r} because a duplicate was allowed")
    elif name is None and unique != p.stem:
        messages.append(f"warning: another scene is already named {p.stem!r}: this one is named {unique!r} "
                        "(its tiles and subdataset carry that name; choose one with --name)")
    if not info.georeferenced:
        messages.append("the scene is not georeferenced: tiles will carry pixel coordinates only")
    if info.is_rotated:
        messages.append("the scene has a rotated grid: tiles keep the rotated transform")
    for m in messages:
        log.info("%s: %s", p.name, m)
    return AddedScene(scene_id, info, len(label_set.labels), messages)
