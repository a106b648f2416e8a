"""An evaluation set for the QC detectors, made from real released tiles.

The released CAS tiles passed the authors' QC, so they are the *clean* cases. Defects are
pasted into them with a known truth: radiometric seams (a straight or jagged line, one side
shifted 10-40 DN in brightness or in one colour band), geometric seams (one side displaced
4-32 px), fill wedges and bands (white, black or a fixed colour, 5-60 % of the tile, some
beside a saturated scar or a black shadow), synthetic clouds (fractal-noise opacity, soft
edges, 20-100 % cover), and traps that must stay clean (a straight road across the tile, a
field with straight edges, a river, a bright scar, a dark shadow). Everything is seeded:
the same sources give the same cases. ``benchmarks/bench_qc_accuracy.py`` and
``tests/core/qc/test_accuracy.py`` use it; ``docs/qc.md`` reports the numbers.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from casdesk.core.raster.io import open_raster, read_window

if TYPE_CHECKING:
    from casdesk.core.qc.rules import Rule

SOURCE_DIRS = ("cas_tiles", "hokkaido_png/images")
"""Folders (under the shared public data folder) holding released tiles."""


@dataclass
class Case:
    """One evaluation tile: ``kind`` is clean, seam, fill, cloud or trap; ``truth`` holds
    the known quantity (``fill``, ``cloud`` cover, seam ``dn`` / ``px``)."""

    name: str
    kind: str
    image: np.ndarray  # (3, rows, cols) uint8
    truth: dict[str, float] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    side: np.ndarray | None = field(default=None, repr=False)
    """For seams: the side of the seam that was changed (diagnostics)."""


def find_sources(public: str | Path) -> list[Path]:
    """Released tiles under ``public`` (the shared data folder), sorted by name."""
    public = Path(public)
    out: list[Path] = []
    for sub in SOURCE_DIRS:
        folder = public / sub
        if folder.is_dir():
            out += sorted(
                p for p in folder.iterdir() if p.suffix.lower() in (".tif", ".tiff", ".png")
            )
    return out


def read_rgb(path: str | Path) -> np.ndarray:
    """A tile as (3, rows, cols) uint8."""
    with open_raster(path) as ds:
        data, _ = read_window(ds)
    data = data[:3]
    if data.shape[0] == 1:
        data = np.repeat(data, 3, axis=0)
    return np.ascontiguousarray(data.astype(np.uint8))


SCENE_FILL_SOURCE = "RGB.byte.tif"
"""A real scene in the shared data folder whose rotated footprint leaves nodata wedges."""


def scene_fill_cases(public: str | Path, sizes: Sequence[int] = (512, 256, 128)) -> list[Case]:
    """Real boundary fill: windows of the Landsat scene (``public``/:data:`SCENE_FILL_SOURCE`)
    at half-window steps, its nodata flag dropped, as a released CAS tile declares none;
    truth: the share outside the scene's own dataset mask. Empty when the scene is absent."""
    path = Path(public) / SCENE_FILL_SOURCE
    if not path.exists():
        return []
    with open_raster(path) as ds:
        data, footprint = ds.read(), ds.dataset_mask() > 0
    rows, cols = footprint.shape
    out = []
    for size in sizes:
        for r in range(0, rows - size + 1, size // 2):
            for c in range(0, cols - size + 1, size // 2):
                truth = 1.0 - float(footprint[r : r + size, c : c + size].mean())
                img = np.ascontiguousarray(data[:3, r : r + size, c : c + size])
                out.append(Case(f"{path.stem}/{size}px_r{r}_c{c}", "scene_fill", img, {"fill": truth}))
    return out


JPEG_QUALITIES = (95, 90, 75, 50)


def jpeg_image(img: np.ndarray, quality: int) -> np.ndarray | None:
    """A (3, rows, cols) uint8 tile after a JPEG round trip at ``quality`` (OpenCV, 4:2:0
    chroma); None when OpenCV cannot encode it."""
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(img.transpose(1, 2, 0)[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else None
    return None if decoded is None else np.ascontiguousarray(decoded[:, :, ::-1].transpose(2, 0, 1))


def jpeg_copies(cases: Sequence[Case], quality: int) -> list[Case]:
    """``cases`` JPEG-compressed at ``quality``, same truth, kind "jpeg"."""
    out = []
    for case in cases:
        img = jpeg_image(case.image, quality)
        if img is not None:
            out.append(Case(f"{case.name}/jpeg{quality}", "jpeg", img, dict(case.truth), case.tags))
    return out


def jpeg_cases(sources: Sequence[str | Path], qualities: Sequence[int] = JPEG_QUALITIES) -> list[Case]:
    """The released tiles JPEG-compressed at each quality (OpenCV, 4:2:0 chroma), as
    drone orthomosaics are often stored; truth: the fill the detector finds on the
    released tile itself (checked by eye on the three with a fill strip, docs/qc.md).
    :func:`measure_cases` measures them as JPEG files are (``TileData.lossy``)."""
    from casdesk.core.qc.detectors import TileData

    out = []
    for path in sources:
        img = read_rgb(path)
        truth = float(TileData(img, np.ones(img.shape[1:], bool)).fill.mean())
        for q in qualities:
            back = jpeg_image(img, q)
            if back is not None:
                out.append(Case(f"{Path(path).stem}/jpeg{q}", "jpeg", back, {"fill": truth}))
    return out


# --------------------------------------------------------------------------- helpers
def fractal_noise(
    shape: tuple[int, int], rng: np.random.Generator, octaves: int = 5, base: int = 4
) -> np.ndarray:
    """Fractal (1/f) noise in [0, 1]: octaves of upsampled random grids, halving weights."""
    rows, cols = shape
    out = np.zeros(shape, np.float32)
    weight, total = 1.0, 0.0
    for o in range(octaves):
        n = base * 2**o
        grid = rng.random((n + 1, n + 1)).astype(np.float32)
        out += weight * cv2.resize(grid, (cols, rows), interpolation=cv2.INTER_CUBIC)
        total += weight
        weight *= 0.55
    out /= total
    out -= out.min()
    return out / max(float(out.max()), 1e-6)


def _side(
    shape: tuple[int, int], angle: float, offset: float, jagged: float, rng: np.random.Generator
) -> np.ndarray:
    """Boolean half-plane: the side of a line through the point ``offset`` (fraction of
    the side) from the centre along the normal at ``angle`` (radians); ``jagged`` px adds
    a random piecewise-straight wobble (a mosaic seamline that follows image steps)."""
    rows, cols = shape
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    cx, cy = (cols - 1) / 2, (rows - 1) / 2
    nx, ny = math.cos(angle), math.sin(angle)
    dist = (xx - cx) * nx + (yy - cy) * ny - offset * min(rows, cols)
    if jagged > 0:
        along = -(xx - cx) * ny + (yy - cy) * nx
        knots = rng.uniform(-jagged, jagged, 12).astype(np.float32)
        pos = np.clip((along + max(rows, cols)) / (2 * max(rows, cols)) * 11, 0, 11)
        dist += np.interp(pos.ravel(), np.arange(12), knots).reshape(shape).astype(np.float32)
    return dist > 0


def _blob(
    shape: tuple[int, int],
    rng: np.random.Generator,
    cover: float,
    center: tuple[float, float],
    radius: float,
) -> np.ndarray:
    """A ragged blob (fractal noise thresholded inside a soft disc)."""
    rows, cols = shape
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    d = np.hypot(xx - center[0], yy - center[1]) / radius
    field_ = fractal_noise(shape, rng, base=8) * 0.8 + np.clip(1 - d, 0, 1)
    return field_ > np.quantile(field_, 1 - cover)


# --------------------------------------------------------------------------- defects
LAST_SIDE: list[np.ndarray] = []
"""The side mask of the last seam made (diagnostics)."""


def add_radiometric_seam(
    img: np.ndarray, rng: np.random.Generator, dn: float, colour: bool, jagged: bool
) -> np.ndarray:
    side = _side(
        img.shape[1:],
        rng.uniform(0, 2 * math.pi),
        rng.uniform(-0.2, 0.2),
        6.0 if jagged else 0.0,
        rng,
    )
    LAST_SIDE[:] = [side]
    out = img.astype(np.int16)
    sign = 1 if rng.random() < 0.5 else -1
    if colour:
        band = int(rng.integers(0, 3))
        out[band][side] += int(sign * dn)
    else:
        out[:, side] += int(sign * dn)
    return np.clip(out, 0, 255).astype(np.uint8)


def add_geometric_seam(
    img: np.ndarray, rng: np.random.Generator, px: float, jagged: bool, subpixel: float = 0.0
) -> np.ndarray:
    """One side of a line displaced by ``px`` in a random direction. ``subpixel`` > 0 adds
    that fraction of a pixel to the shift and resamples bilinearly, as a reprojected scene
    of a real mosaic is (its pixels are then no exact copies of the other side's)."""
    rows, cols = img.shape[1:]
    side = _side(
        (rows, cols),
        rng.uniform(0, 2 * math.pi),
        rng.uniform(-0.2, 0.2),
        6.0 if jagged else 0.0,
        rng,
    )
    LAST_SIDE[:] = [side]
    direction = rng.uniform(0, 2 * math.pi)
    shift = px + subpixel
    m = np.array([[1, 0, shift * math.cos(direction)], [0, 1, shift * math.sin(direction)]], np.float32)
    hwc = np.ascontiguousarray(img.transpose(1, 2, 0))
    moved = cv2.warpAffine(
        hwc, m, (cols, rows), flags=cv2.INTER_LINEAR if subpixel else cv2.INTER_NEAREST,
        borderMode=cv2.BORDER_REFLECT,
    )
    out = hwc.copy()
    out[side] = moved[side]
    return np.ascontiguousarray(out.transpose(2, 0, 1))


def fill_region(
    shape: tuple[int, int], rng: np.random.Generator, fraction: float, kind: str
) -> np.ndarray:
    """A wedge (a corner cut by a straight line) or a band (a strip along one side) of
    about ``fraction`` of the tile."""
    rows, cols = shape
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    if kind == "band":
        side = int(rng.integers(0, 4))
        coord = [xx / cols, 1 - xx / cols, yy / rows, 1 - yy / rows][side]
        tilt = rng.uniform(-0.08, 0.08) * ([yy / rows, yy / rows, xx / cols, xx / cols][side] - 0.5)
        value = coord + tilt
    else:
        corner = int(rng.integers(0, 4))
        fx = xx / cols if corner in (0, 2) else 1 - xx / cols
        fy = yy / rows if corner in (0, 1) else 1 - yy / rows
        w = rng.uniform(0.35, 0.65)
        value = w * fx + (1 - w) * fy
    thr = np.quantile(value, fraction)
    return value < thr


def add_fill(
    img: np.ndarray,
    rng: np.random.Generator,
    fraction: float,
    kind: str,
    value: tuple[int, int, int],
    neighbour: str | None,
    existing: np.ndarray | None = None,
) -> tuple[np.ndarray, float]:
    """Fill a wedge/band with ``value``; ``neighbour`` "scar" or "shadow" first paints a
    ragged saturated-white or black blob straddling the fill edge (the trap). Returns the
    image and the true fill fraction (the new region plus ``existing``, the source tile's
    own fill)."""
    rows, cols = img.shape[1:]
    region = fill_region((rows, cols), rng, fraction, kind)
    out = img.copy()
    if neighbour is not None:
        dist = cv2.distanceTransform((~region).astype(np.uint8), cv2.DIST_L2, 3)
        edge = np.argwhere((dist > 0) & (dist < 2))
        if edge.size:
            cy, cx = edge[int(rng.integers(0, len(edge)))]
            blob = _blob((rows, cols), rng, 0.05, (float(cx), float(cy)), 0.15 * min(rows, cols))
            noise = rng.normal(0, 6, (rows, cols))
            if neighbour == "scar":
                tone = np.clip(262 + noise, 0, 255)
            else:
                tone = np.clip(-6 + noise, 0, 255)
            for b in range(3):
                out[b][blob] = tone[blob].astype(np.uint8)
    for b in range(3):
        out[b][region] = value[b]
    if existing is not None:
        region = region | existing
    return out, float(region.mean())


def add_cloud(img: np.ndarray, rng: np.random.Generator, cover: float) -> tuple[np.ndarray, float]:
    """Blend a synthetic cloud: fractal-noise opacity thresholded to ``cover`` with a soft
    edge, near-white with a little shading. Truth: share of pixels with opacity >= 0.5."""
    rows, cols = img.shape[1:]
    noise = fractal_noise((rows, cols), rng)
    thr = float(np.quantile(noise, 1 - cover)) if cover < 1 else -1.0
    soft = 0.06
    alpha = (
        np.clip((noise - thr) / soft + 0.5, 0, 1)
        if cover < 1
        else np.clip(0.85 + 0.3 * noise, 0, 1)
    )
    shade = 228 + 20 * (noise - 0.5)
    out = (
        img.astype(np.float32) * (1 - alpha)
        + (shade * alpha)[None] * np.array([0.98, 1.0, 1.02])[:, None, None]
    )
    return np.clip(out, 0, 255).astype(np.uint8), float((alpha >= 0.5).mean())


def add_trap(img: np.ndarray, rng: np.random.Generator, kind: str) -> np.ndarray:
    """Natural structures a seam/fill/cloud detector must not mistake for defects."""
    rows, cols = img.shape[1:]
    out = img.astype(np.float32)
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    if kind == "road":
        a = rng.uniform(0, math.pi)
        d = (
            (xx - cols / 2) * math.cos(a)
            + (yy - rows / 2) * math.sin(a)
            - rng.uniform(-0.2, 0.2) * rows
        )
        road = np.abs(d) < rng.uniform(2.5, 5)
        tone = rng.uniform(170, 220)
        out[:, road] = tone + rng.normal(0, 4, int(road.sum()))
    elif kind == "field":
        x0, y0 = rng.uniform(0.1, 0.4, 2) * (cols, rows)
        w, h = rng.uniform(0.3, 0.5, 2) * (cols, rows)
        a = rng.uniform(0, math.pi / 2)
        u = (xx - x0) * math.cos(a) + (yy - y0) * math.sin(a)
        v = -(xx - x0) * math.sin(a) + (yy - y0) * math.cos(a)
        field_ = (u > 0) & (u < w) & (v > 0) & (v < h)
        out[:, field_] = out[:, field_] * 0.5 + np.array([120, 150, 70])[:, None] * 0.5
    elif kind == "river":
        a = rng.uniform(0, math.pi)
        t = (xx - cols / 2) * math.cos(a) + (yy - rows / 2) * math.sin(a)
        s = -(xx - cols / 2) * math.sin(a) + (yy - rows / 2) * math.cos(a)
        river = np.abs(t - 30 * np.sin(s / 60.0 + rng.uniform(0, 6))) < rng.uniform(10, 25)
        out[:, river] = np.array([70, 95, 110])[:, None] + rng.normal(0, 5, int(river.sum()))
    elif kind in ("scar", "shadow"):
        center = (float(rng.uniform(0.1, 0.9) * cols), float(rng.uniform(0.1, 0.9) * rows))
        blob = _blob((rows, cols), rng, 0.12, center, 0.3 * min(rows, cols))
        if kind == "scar":
            out[:, blob] = np.clip(
                out[:, blob] * 0.3 + 200 + rng.normal(0, 12, int(blob.sum())), 0, 255
            )
        else:
            out[:, blob] = out[:, blob] * 0.25
    return np.clip(out, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- the set
SEAM_DN = (10, 15, 20, 30, 40)
SEAM_PX = (4, 8, 16, 24, 32)
TRAPS = ("road", "field", "river", "scar", "shadow")


ALL_KINDS = ("clean", "seam", "fill", "cloud", "trap")


def build_cases(
    sources: Sequence[str | Path],
    seed: int = 16,
    per_source: int = 1,
    kinds: Sequence[str] = ALL_KINDS,
    resampled: bool = False,
) -> Iterator[Case]:
    """All evaluation cases for ``sources``: each clean tile, then ``per_source`` rounds of
    seams (every DN and px level, brightness/colour, straight/jagged), fills, clouds and
    traps made from it. A fill case's truth includes the source tile's own footprint fill
    (three released tiles have a white or black corner; checked by eye). ``kinds`` limits
    the cases made (each kind draws from its own seeded generator, so a subset gives the
    same cases as the full set). ``resampled``: geometric seams shifted by a further 0.1-0.9
    px and resampled bilinearly (a stress variant: the same cases otherwise; the shifts'
    fractions come from a generator of their own)."""
    from casdesk.core.qc.detectors import fill_mask

    rngs = {kind: np.random.default_rng([seed, i]) for i, kind in enumerate(ALL_KINDS)}
    if resampled:
        rngs["subpixel"] = np.random.default_rng([seed, 99])
    images = [(Path(p).stem, read_rgb(p)) for p in sources]
    own_fill = {name: fill_mask(img, np.ones(img.shape[1:], bool), False) for name, img in images}
    if "clean" in kinds:
        for name, img in images:
            yield Case(name, "clean", img)
    for rnd in range(per_source):
        for name, img in images:
            yield from _defects(name, img, rnd, rngs, kinds, own_fill[name])


def _defects(
    name: str,
    img: np.ndarray,
    rnd: int,
    rngs: dict[str, np.random.Generator],
    kinds: Sequence[str],
    own_fill: np.ndarray,
) -> Iterator[Case]:
    if "seam" in kinds:
        rng = rngs["seam"]
        for i, dn in enumerate(SEAM_DN):
            colour, jagged = (i + rnd) % 2 == 1, (i + rnd) % 3 == 2
            seamed = add_radiometric_seam(img, rng, dn, colour, jagged)
            yield Case(
                f"{name}/seam{dn}dn{'c' if colour else 'b'}{'j' if jagged else ''}",
                "seam",
                seamed,
                {"dn": float(dn), "px": 0.0},
                side=LAST_SIDE[0],
            )
        for i, px in enumerate(SEAM_PX):
            jagged = (i + rnd) % 3 == 2
            sub = rngs["subpixel"].uniform(0.1, 0.9) if "subpixel" in rngs else 0.0
            seamed = add_geometric_seam(img, rng, px, jagged, sub)
            yield Case(
                f"{name}/seam{px}px{'j' if jagged else ''}",
                "seam",
                seamed,
                {"dn": 0.0, "px": float(px)},
                side=LAST_SIDE[0],
            )
    if "fill" in kinds:
        rng = rngs["fill"]
        for value, neighbour in (
            ((255, 255, 255), "scar"),
            ((0, 0, 0), "shadow"),
            ((0, 0, 0), None),
            ((128, 120, 110), None),
        ):
            frac = float(rng.uniform(0.05, 0.6))
            kind = "band" if rng.random() < 0.4 else "wedge"
            filled, truth = add_fill(img, rng, frac, kind, value, neighbour, own_fill)
            tag = f"{kind}{value[0]}{'+' + neighbour if neighbour else ''}"
            yield Case(f"{name}/fill-{tag}", "fill", filled, {"fill": truth}, (tag,))
    if "cloud" in kinds:
        rng = rngs["cloud"]
        for cover in (float(rng.uniform(0.2, 0.5)), float(rng.uniform(0.5, 0.95)), 1.0):
            clouded, truth = add_cloud(img, rng, cover)
            yield Case(f"{name}/cloud{cover:.2f}", "cloud", clouded, {"cloud": truth})
    if "trap" in kinds:
        rng = rngs["trap"]
        for trap in TRAPS:
            yield Case(f"{name}/trap-{trap}", "trap", add_trap(img, rng, trap), {}, (trap,))


# --------------------------------------------------------------------------- scoring
SEAM_SEVERE_DN = 15.0
SEAM_SEVERE_PX = 8.0
"""Seams at least this strong (DN or px) must be caught (issue 16's goal: >= 90 %)."""


def measure_cases(
    cases: Sequence[Case],
    metrics: Sequence[str] = ("fill_fraction", "cloud_fraction", "seam_score"),
) -> list[dict[str, float]]:
    """Each case's metric values (the registered detectors on the in-memory pixels)."""
    from casdesk.core.qc.detectors import METRICS, TileData

    out = []
    for case in cases:
        tile = TileData(case.image, np.ones(case.image.shape[1:], bool), False, None, "SAT", lossy=case.kind == "jpeg")
        out.append({name: float(METRICS[name].func(tile)) for name in metrics})
    return out


def summarise(
    cases: Sequence[Case], values: Sequence[dict[str, float]], rules: Sequence[Rule]
) -> dict[str, dict[str, float]]:
    """Accuracy per detector at ``rules`` (Rule objects: metric, op, threshold, margin).

    A tile is *rejected* by a rule beyond its margin and *flagged* within it; *caught* means
    flagged or rejected (a person looks at it). Returns, per metric: clean tiles rejected /
    flagged (share), traps rejected / flagged, and for seams the share of severe seams caught;
    for fill and cloud the share of defects measured within the goal and the worst error.
    """
    by_metric = {r.metric: r for r in rules}

    def state(metric: str, v: float) -> str:
        r = by_metric[metric]
        thr, margin = float(r.threshold), float(r.margin)
        over = v > thr if r.op == "max" else v < thr
        if abs(v - thr) <= margin:
            return "flagged"
        return "rejected" if over else "accepted"

    res: dict[str, dict[str, float]] = {}
    for metric in ("fill_fraction", "cloud_fraction", "seam_score"):
        if metric not in by_metric:
            continue
        row: dict[str, float] = {}
        for kind in ("clean", "trap"):
            states = [
                state(metric, v[metric])
                for c, v in zip(cases, values, strict=True)
                if c.kind == kind
            ]
            n = max(len(states), 1)
            row[f"{kind}_n"] = len(states)
            row[f"{kind}_rejected"] = states.count("rejected") / n
            row[f"{kind}_flagged"] = states.count("flagged") / n
        res[metric] = row
    seams = [(c, v) for c, v in zip(cases, values, strict=True) if c.kind == "seam"]
    if seams and "seam_score" in by_metric:
        row = res["seam_score"]
        for label, sel in (
            (
                "severe",
                lambda c: c.truth["dn"] >= SEAM_SEVERE_DN or c.truth["px"] >= SEAM_SEVERE_PX,
            ),
            ("radiometric_severe", lambda c: c.truth["dn"] >= SEAM_SEVERE_DN),
            ("geometric_severe", lambda c: c.truth["px"] >= SEAM_SEVERE_PX),
            (
                "weak",
                lambda c: 0 < c.truth["dn"] < SEAM_SEVERE_DN or 0 < c.truth["px"] < SEAM_SEVERE_PX,
            ),
        ):
            chosen = [v for c, v in seams if sel(c)]
            caught = [state("seam_score", v["seam_score"]) != "accepted" for v in chosen]
            row[f"{label}_n"] = len(chosen)
            row[f"{label}_caught"] = sum(caught) / max(len(caught), 1)
    for metric, key, goal in (("fill_fraction", "fill", 0.03), ("cloud_fraction", "cloud", 0.10)):
        pairs = [
            (c.truth[key], v[metric]) for c, v in zip(cases, values, strict=True) if c.kind == key
        ]
        if pairs and metric in res:
            err = np.abs(np.array([p[1] - p[0] for p in pairs]))
            res[metric]["defects_n"] = len(pairs)
            res[metric]["within_goal"] = float((err <= goal).mean())
            res[metric]["max_error"] = float(err.max())
            res[metric]["median_error"] = float(np.median(err))
    return res
