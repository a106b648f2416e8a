"""Synthetic georeferenced scenes for the demo project, tests and benchmarks.

A scene has terrain-like texture (multi-octave value noise in vegetation and soil
colours), bright landslide scars with matching polygons, a soft cloud patch, a vertical
mosaic seam (the right part differently exposed) and a nodata fill wedge in one corner.
Everything is generated from a seed: no download.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import rasterio
import shapely
from affine import Affine
from rasterio.crs import CRS
from shapely.geometry import Polygon

from casdesk.core.labels.io import rasterize_polygons


@dataclass
class SyntheticScene:
    path: Path
    width: int
    height: int
    transform: Affine
    crs: str
    scars_px: list[Polygon] = field(default_factory=list)  # pixel coordinates
    cloud_center: tuple[int, int] = (0, 0)  # row, col
    cloud_radius: int = 0
    seam_col: int = 0
    nodata: int = 0

    @property
    def scars_crs(self) -> list[Polygon]:
        t = self.transform
        return [shapely.affinity.affine_transform(p, [t.a, t.b, t.d, t.e, t.c, t.f]) for p in self.scars_px]


def value_noise(shape: tuple[int, int], rng: np.random.Generator, octaves: int = 5, base: int = 8) -> np.ndarray:
    """Fractal value noise in [0, 1]: random grids upsampled smoothly, summed by octave."""
    h, w = shape
    out = np.zeros(shape, dtype=np.float32)
    amp, total = 1.0, 0.0
    for o in range(octaves):
        cells = base * 2**o
        grid = rng.random((max(2, h * cells // max(h, w)), max(2, w * cells // max(h, w))), dtype=np.float32)
        out += amp * cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
        total += amp
        amp *= 0.5
    out /= total
    lo, hi = out.min(), out.max()
    return (out - lo) / (hi - lo + 1e-6)


def scar_polygon(rng: np.random.Generator, center: tuple[float, float], radius: float, n: int = 24) -> Polygon:
    """An irregular, elongated blob like a shallow landslide scar (x=col, y=row)."""
    angles = np.sort(rng.uniform(0, 2 * math.pi, n))
    radii = radius * (0.6 + 0.4 * rng.random(n))
    stretch = rng.uniform(1.3, 2.2)
    rot = rng.uniform(0, math.pi)
    xs = radii * np.cos(angles) * stretch
    ys = radii * np.sin(angles)
    cx, cy = center
    pts = [
        (cx + x * math.cos(rot) - y * math.sin(rot), cy + x * math.sin(rot) + y * math.cos(rot))
        for x, y in zip(xs, ys, strict=True)
    ]
    return shapely.make_valid(Polygon(pts)).buffer(0)


def make_scene(
    path: str | Path,
    width: int = 2048,
    height: int = 2048,
    seed: int = 0,
    n_scars: int = 14,
    resolution: float = 0.5,
    crs: str = "EPSG:32648",
    origin: tuple[float, float] = (500_000.0, 3_300_000.0),
    cloud: bool = True,
    seam: bool = True,
    fill: bool = True,
    dtype: str = "uint8",
    bands: int = 3,
) -> SyntheticScene:
    """Write a synthetic GeoTIFF scene and return what was put in it.

    ``dtype='uint16'`` with ``bands=4`` gives a 16-bit 4-band product (values up to
    ~12,000, like surface reflectance x 10,000).
    """
    rng = np.random.default_rng(seed)
    p = Path(path)
    h, w = height, width
    terrain = value_noise((h, w), rng)
    detail = value_noise((h, w), rng, octaves=3, base=64)
    veg = np.stack([0.22 + 0.1 * terrain, 0.35 + 0.15 * terrain, 0.18 + 0.08 * terrain])
    soil = np.stack([0.45 + 0.1 * detail, 0.38 + 0.1 * detail, 0.30 + 0.08 * detail])
    mix = np.clip((terrain - 0.55) * 4, 0, 1)
    img = veg * (1 - mix) + soil * mix
    img *= 0.85 + 0.3 * detail  # texture
    scene = SyntheticScene(p, w, h, Affine(resolution, 0, origin[0], 0, -resolution, origin[1]), crs)

    # landslide scars: bright, grey-brown, slightly rough
    margin = max(40, min(w, h) // 20)
    placed: list[Polygon] = []
    tries = 0
    while len(placed) < n_scars and tries < n_scars * 20:
        tries += 1
        r = rng.uniform(min(w, h) / 60, min(w, h) / 22)
        c = (rng.uniform(margin, w - margin), rng.uniform(margin, h - margin))
        poly = scar_polygon(rng, c, r)
        if poly.is_empty or any(poly.buffer(8).intersects(q) for q in placed):
            continue
        placed.append(poly)
    scene.scars_px = placed
    scar_mask = rasterize_polygons(placed, (h, w)).astype(bool)
    scar_col = np.array([0.78, 0.72, 0.64])[:, None] * (0.9 + 0.15 * detail[scar_mask])[None]
    img[:, scar_mask] = scar_col

    if cloud:
        cy, cx = int(h * 0.3), int(w * 0.72)
        rad = min(w, h) // 7
        yy, xx = np.ogrid[:h, :w]
        d = np.sqrt(((yy - cy) / rad) ** 2 + ((xx - cx) / (rad * 1.4)) ** 2)
        alpha = np.clip(1.3 - d, 0, 1) * (0.75 + 0.25 * value_noise((h, w), rng, octaves=3, base=6))
        img = img * (1 - alpha) + 0.96 * alpha
        scene.cloud_center, scene.cloud_radius = (cy, cx), rad
    if seam:
        scene.seam_col = int(w * 0.55)
        # a differently exposed second image: ~+25-30 DN on this terrain
        img[:, :, scene.seam_col :] *= np.array([1.42, 1.36, 1.28])[:, None, None]

    img = np.clip(img, 0, 1)
    if bands > 3:
        nir = np.clip(0.5 * (1 - mix) + 0.25 * detail, 0, 1)[None]
        img = np.concatenate([img, np.repeat(nir, bands - 3, axis=0)])
    scale = 255 if dtype == "uint8" else 12_000
    data = (img[:bands] * scale).astype(dtype)
    data[data == 0] = 1  # 0 is nodata
    if fill:
        yy, xx = np.ogrid[:h, :w]
        wedge = (xx + yy) < min(w, h) * 0.22  # top-left corner outside the footprint
        data[:, wedge] = 0
    profile = {
        "driver": "GTiff",
        "width": w,
        "height": h,
        "count": bands,
        "dtype": dtype,
        "crs": CRS.from_user_input(crs),
        "transform": scene.transform,
        "nodata": 0,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
    }
    if bands == 3 and dtype == "uint8":
        profile["photometric"] = "RGB"
    with rasterio.open(p, "w", **profile) as dst:
        dst.write(data)
    return scene
