"""Where each tile lies on the project map, and the map's pictures, in numpy (no Qt).

Map coordinates are Qt scene units: ``x`` east, ``y`` *down*. A georeferenced scene is
drawn at its real place in its CRS (``y = -northing``), so every scene that shares the most
common CRS lines up; its tiles sit at ``(col_off, row_off)`` through the scene's transform.
Tiles with no georeferenced scene (the released CAS tiles) are laid out as a grid per
subdataset (one cell per tile, in tile pixel units), beside the georeferenced part.

Each block becomes one RGBA raster (:func:`render_block`): a tile is a filled rectangle in
its colour with a dark border, a dot where it holds landslide pixels and a corner mark where
it has a prediction. One image per block instead of one graphics item per tile keeps the map
fast at 20k+ tiles; a click is answered by :meth:`MapLayout.tile_at` from the same arrays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from casdesk.core.dataset import tile_table as ti

MAX_RASTER_PX = 2048
"""Longest side of a scene block's raster."""
GRID_CELL_PX = 8
"""Raster pixels per tile in a subdataset grid."""
GAP = 0.08
"""Space between blocks, as a fraction of the largest block's size."""

STATE_COLOURS: dict[int, tuple[int, int, int]] = {
    0: (150, 150, 150),  # pending
    1: (46, 160, 67),  # accepted
    2: (210, 45, 45),  # rejected
    3: (230, 140, 20),  # flagged
    4: (20, 120, 50),  # manual accept
    5: (150, 20, 20),  # manual reject
    -1: (120, 120, 120),  # not evaluated
}
PART_COLOURS: dict[int, tuple[int, int, int]] = {
    0: (120, 120, 120), 1: (47, 111, 208), 2: (142, 68, 173), 3: (22, 160, 133),
}
LABEL_DOT = (255, 235, 60)
PREDICTION_MARK = (0, 220, 255)
BORDER = (35, 35, 35)


@dataclass
class Block:
    """One scene or one subdataset grid: its tiles (index rows) and their rectangles."""

    kind: str  # "scene" or "grid"
    title: str
    rows: np.ndarray  # int64 index rows of its tiles, drawing order
    x0: np.ndarray  # float64 map rectangles of those tiles
    y0: np.ndarray
    x1: np.ndarray
    y1: np.ndarray
    bounds: tuple[float, float, float, float]  # x0, y0, x1, y1 of the block
    crs: str | None = None  # the scene's CRS (None: pixel units)
    georeferenced: bool = False
    # grid blocks: cols x rows of cells, each ``cell`` map units
    grid_shape: tuple[int, int] = (0, 0)
    cell: float = 1.0
    labels: list[np.ndarray] = field(default_factory=list)  # rings (n, 2) in map coordinates

    @property
    def width(self) -> float:
        return self.bounds[2] - self.bounds[0]

    @property
    def height(self) -> float:
        return self.bounds[3] - self.bounds[1]

    def shift(self, dx: float, dy: float) -> None:
        for a, d in ((self.x0, dx), (self.x1, dx), (self.y0, dy), (self.y1, dy)):
            a += d
        b = self.bounds
        self.bounds = (b[0] + dx, b[1] + dy, b[2] + dx, b[3] + dy)
        self.labels = [ring + (dx, dy) for ring in self.labels]


@dataclass
class SceneInfo:
    """What the layout needs of a scene (a plain record, filled from the catalog)."""

    id: int
    name: str
    crs: str | None
    transform: tuple[float, ...]  # affine a, b, c, d, e, f
    width: int
    height: int
    labels_px: list[np.ndarray] = field(default_factory=list)  # rings in scene pixels (col, row)


@dataclass
class MapLayout:
    blocks: list[Block]
    n_tiles: int

    def tile_at(self, x: float, y: float) -> tuple[int, int] | None:
        """(block number, index row) of the tile at map point (x, y)."""
        for b, block in enumerate(self.blocks):
            x0, y0, x1, y1 = block.bounds
            if not (x0 <= x <= x1 and y0 <= y <= y1) or block.rows.size == 0:
                continue
            hit = np.flatnonzero((block.x0 <= x) & (x < block.x1) & (block.y0 <= y) & (y < block.y1))
            if hit.size:  # overlapping tiles (stride < size): the one centred nearest the point
                cx = (block.x0[hit] + block.x1[hit]) / 2 - x
                cy = (block.y0[hit] + block.y1[hit]) / 2 - y
                return b, int(block.rows[hit[np.argmin(cx * cx + cy * cy)]])
        return None

    def block_at(self, x: float, y: float) -> Block | None:
        for block in self.blocks:
            x0, y0, x1, y1 = block.bounds
            if x0 <= x <= x1 and y0 <= y <= y1:
                return block
        return None


def _georef(scene: SceneInfo) -> bool:
    a, b, _c, d, e, _f = scene.transform[:6]
    return scene.crs is not None and not (a == 1 and b == 0 and d == 0 and e == 1)


def build_layout(index: ti.TileIndex, scenes: list[SceneInfo]) -> MapLayout:
    """Place every tile of ``index`` (see the module doc). Runs in a worker."""
    by_id = {s.id: s for s in scenes}
    crs_counts: dict[str, int] = {}
    for s in scenes:
        if _georef(s) and s.crs is not None:
            crs_counts[s.crs] = crs_counts.get(s.crs, 0) + 1
    main_crs = max(crs_counts, key=lambda c: crs_counts[c]) if crs_counts else None

    placed: list[Block] = []  # georeferenced scenes in the main CRS, at their place
    loose: list[Block] = []  # everything else, arranged beside them
    has_offset = (index.scene_id >= 0) & (index.row_off >= 0) & (index.col_off >= 0)
    for s in scenes:
        rows = np.flatnonzero(has_offset & (index.scene_id == s.id))
        block = _scene_block(index, s, rows, georef=_georef(s) and s.crs == main_crs)
        (placed if block.georeferenced else loose).append(block)
    rest = np.flatnonzero(~(has_offset & np.isin(index.scene_id, list(by_id))))
    for code, name in enumerate(index.subdataset_names):
        rows = rest[index.subdataset_code[rest] == code]
        if rows.size:
            loose.append(_grid_block(index, rows, name))
    _arrange(placed, loose)
    return MapLayout(placed + loose, len(index))


def _scene_block(index: ti.TileIndex, s: SceneInfo, rows: np.ndarray, georef: bool) -> Block:
    if georef:
        a, b, c, d, e, f = s.transform[:6]
    else:
        a, b, c, d, e, f = 1.0, 0.0, 0.0, 0.0, 1.0, 0.0

    def to_map(col: np.ndarray, row: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = a * col + b * row + c
        y = d * col + e * row + f
        return x, (-y if georef else y)

    col0, row0 = index.col_off[rows].astype(float), index.row_off[rows].astype(float)
    col1, row1 = col0 + index.width[rows], row0 + index.height[rows]
    xa, ya = to_map(col0, row0)
    xb, yb = to_map(col1, row1)
    corners_x, corners_y = to_map(np.array([0.0, s.width]), np.array([0.0, s.height]))
    bounds = (float(corners_x.min()), float(corners_y.min()), float(corners_x.max()), float(corners_y.max()))
    labels = []
    for ring in s.labels_px:
        x, y = to_map(ring[:, 0], ring[:, 1])
        labels.append(np.column_stack([x, y]))
    return Block(
        "scene", s.name, rows, np.minimum(xa, xb), np.minimum(ya, yb), np.maximum(xa, xb),
        np.maximum(ya, yb), bounds, s.crs if georef else None, georef, labels=labels,
    )


def _stride(offsets: np.ndarray) -> float:
    """The common step between tile offsets (0 when unknown)."""
    steps = np.diff(np.unique(offsets))
    return float(np.median(steps)) if steps.size else 0.0


def core_rects(block: Block) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each tile's own part of the map: with overlapping tiles (stride < size) the central
    stride x stride region (the tiles' edges at the block's border kept), so every spot is
    drawn in the colour of the tile centred nearest it, as :meth:`MapLayout.tile_at` picks."""
    x0, y0, x1, y1 = block.x0.copy(), block.y0.copy(), block.x1.copy(), block.y1.copy()
    if block.kind != "scene" or block.rows.size < 2:
        return x0, y0, x1, y1
    for lo, hi, b_lo, b_hi in ((x0, x1, block.bounds[0], block.bounds[2]), (y0, y1, block.bounds[1], block.bounds[3])):
        size = float(np.median(hi - lo))
        step = _stride(lo)
        inset = (size - step) / 2 if 0 < step < size else 0.0
        if inset <= 0:
            continue
        eps = 1e-6 * max(abs(b_hi - b_lo), 1.0)
        lo += np.where(lo <= b_lo + eps, 0.0, inset)
        hi -= np.where(hi >= b_hi - eps, 0.0, inset)
    return x0, y0, x1, y1


def _grid_block(index: ti.TileIndex, rows: np.ndarray, title: str) -> Block:
    rows = rows[np.argsort(index.name_rank()[rows], kind="stable")]
    n = rows.size
    cols = max(1, math.ceil(math.sqrt(n * 1.6)))
    nrows = math.ceil(n / cols)
    cell = float(max(int(index.width[rows].max(initial=1)), int(index.height[rows].max(initial=1)), 1))
    k = np.arange(n)
    x0 = (k % cols) * cell
    y0 = (k // cols) * cell
    return Block(
        "grid", title, rows, x0.astype(float), y0.astype(float), x0 + cell, y0 + cell,
        (0.0, 0.0, cols * cell, nrows * cell), None, False, (cols, nrows), cell,
    )


def _arrange(placed: list[Block], loose: list[Block]) -> None:
    """Put the loose blocks in rows to the right of the placed ones (or from the origin)."""
    if placed:
        px0 = min(b.bounds[0] for b in placed)
        py0 = min(b.bounds[1] for b in placed)
        px1 = max(b.bounds[2] for b in placed)
        start_x, start_y = px1, py0
        size = max(px1 - px0, max(b.height for b in placed))
    else:
        start_x = start_y = 0.0
        size = max((max(b.width, b.height) for b in loose), default=1.0)
    gap = GAP * size
    x = start_x + (gap if placed else 0.0)
    y = start_y
    row_h = 0.0
    row_limit = x + max(size * 2.2, max((b.width for b in loose), default=0.0))
    for block in loose:
        if x > start_x + gap and x + block.width > row_limit:
            x = start_x + (gap if placed else 0.0)
            y += row_h + gap
            row_h = 0.0
        # title room above each block
        block.shift(x - block.bounds[0], y + gap * 0.4 - block.bounds[1])
        x += block.width + gap
        row_h = max(row_h, block.height + gap * 0.4)


# --------------------------------------------------------------------------- pictures
def tile_colours(index: ti.TileIndex, colour_by: str) -> np.ndarray:
    """(n, 3) uint8 colour of every tile: by QC state or by split part."""
    if colour_by == "split":
        codes, table = index.split_part if index.split_part.size else np.zeros(len(index), np.int8), PART_COLOURS
    else:
        codes, table = index.qc_state, STATE_COLOURS
    lut = np.zeros((256, 3), np.uint8)
    for code, rgb in table.items():
        lut[code % 256] = rgb
    return lut[codes.astype(np.int64) % 256]


@dataclass
class BlockImage:
    """An RGBA raster of a block and where it lies: ``rect`` (x0, y0, x1, y1) in map units."""

    rgba: np.ndarray  # (h, w, 4) uint8, C-contiguous
    rect: tuple[float, float, float, float]


def render_block(
    block: Block, colours: np.ndarray, labelled: np.ndarray, predicted: np.ndarray
) -> BlockImage:
    """Draw a block's tiles (``colours``/``labelled``/``predicted`` are per index row)."""
    if block.kind == "grid":
        return _render_grid(block, colours, labelled, predicted)
    return _render_scene(block, colours, labelled, predicted)


def _render_grid(block: Block, colours: np.ndarray, labelled: np.ndarray, predicted: np.ndarray) -> BlockImage:
    cols, nrows = block.grid_shape
    k = GRID_CELL_PX
    cells = np.zeros((nrows * cols, 4), np.uint8)
    n = block.rows.size
    cells[:n, :3] = colours[block.rows]
    cells[:n, 3] = 255
    img = np.repeat(np.repeat(cells.reshape(nrows, cols, 4), k, axis=0), k, axis=1)
    view = img.reshape(nrows, k, cols, k, 4)
    used = np.zeros((nrows * cols,), bool)
    used[:n] = True
    filled = used.reshape(nrows, cols)
    border = np.array([*BORDER, 255], np.uint8)
    view[:, 0][filled] = border  # top edge of every cell
    view[:, :, :, 0][np.broadcast_to(filled[:, None, :], (nrows, k, cols))] = border  # left edge
    lab = np.zeros(nrows * cols, bool)
    lab[:n] = labelled[block.rows]
    pred = np.zeros(nrows * cols, bool)
    pred[:n] = predicted[block.rows]
    mid = slice(k // 2 - 1, k // 2 + 1)
    for on, where, colour in ((lab, (mid, mid), LABEL_DOT), (pred, (slice(1, 3), slice(k - 3, k - 1)), PREDICTION_MARK)):
        part = view[:, where[0], :, where[1]]
        mask = np.broadcast_to(on.reshape(nrows, 1, cols, 1), part.shape[:4])
        part[mask] = np.array([*colour, 255], np.uint8)
    return BlockImage(np.ascontiguousarray(img), block.bounds)


def raster_shape(block: Block) -> tuple[int, int, float]:
    """(rows, cols, raster pixels per map unit) of a block's raster: a scene's longest side
    is :data:`MAX_RASTER_PX`, a grid has :data:`GRID_CELL_PX` pixels per cell."""
    if block.kind == "grid":
        cols, nrows = block.grid_shape
        return nrows * GRID_CELL_PX, cols * GRID_CELL_PX, GRID_CELL_PX / max(block.cell, 1e-9)
    bx0, by0, bx1, by1 = block.bounds
    w_map, h_map = max(bx1 - bx0, 1e-9), max(by1 - by0, 1e-9)
    scale = MAX_RASTER_PX / max(w_map, h_map)
    return max(1, round(h_map * scale)), max(1, round(w_map * scale)), scale


def pixel_rects(
    block: Block, rects: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Map rectangles ``(x0, y0, x1, y1)`` of the block's tiles -> ``(r0, r1, c0, c1)`` on its
    raster (each at least one pixel, inside the raster)."""
    h, w, scale = raster_shape(block)
    bx0, by0 = block.bounds[0], block.bounds[1]
    tx0, ty0, tx1, ty1 = rects
    c0 = np.clip(np.floor((tx0 - bx0) * scale + 0.5).astype(int), 0, w - 1)
    r0 = np.clip(np.floor((ty0 - by0) * scale + 0.5).astype(int), 0, h - 1)
    c1 = np.clip(np.floor((tx1 - bx0) * scale + 0.5).astype(int), c0 + 1, w)
    r1 = np.clip(np.floor((ty1 - by0) * scale + 0.5).astype(int), r0 + 1, h)
    return r0, r1, c0, c1


def _render_scene(block: Block, colours: np.ndarray, labelled: np.ndarray, predicted: np.ndarray) -> BlockImage:
    h, w, _scale = raster_shape(block)
    img = np.zeros((h, w, 4), np.uint8)
    img[..., :3] = 40
    img[..., 3] = 90  # the footprint: faint
    r0, r1, c0, c1 = pixel_rects(block, core_rects(block))
    border = np.array([*BORDER, 255], np.uint8)
    dot = np.array([*LABEL_DOT, 255], np.uint8)
    mark = np.array([*PREDICTION_MARK, 255], np.uint8)
    for i, r in enumerate(block.rows.tolist()):
        a, b, c, d = r0[i], r1[i], c0[i], c1[i]
        img[a:b, c:d, :3] = colours[r]
        img[a:b, c:d, 3] = 255
        if b - a >= 4 and d - c >= 4:
            t = max(1, min(b - a, d - c) // 48)  # visible when the map is zoomed out
            img[a:a + t, c:d] = border
            img[a:b, c:c + t] = border
        if labelled[r] and not block.labels:  # label outlines, when known, say more
            cy, cx = (a + b) // 2, (c + d) // 2
            img[cy:cy + max(1, (b - a) // 8), cx:cx + max(1, (d - c) // 8)] = dot
        if predicted[r] and b - a >= 4:
            img[a + 1:a + 1 + max(1, (b - a) // 5), d - 1 - max(1, (d - c) // 5):d - 1] = mark
    return BlockImage(img, block.bounds)


def state_counts(index: ti.TileIndex, layout: MapLayout) -> dict[int, int]:
    """Tiles drawn per QC state code."""
    rows = np.concatenate([b.rows for b in layout.blocks]) if layout.blocks else np.zeros(0, np.int64)
    codes, counts = np.unique(index.qc_state[rows], return_counts=True)
    return {int(c): int(n) for c, n in zip(codes, counts, strict=True)}


def nice_length(target: float) -> float:
    """A round length (1, 2 or 5 times a power of ten) not above ``target``."""
    if target <= 0 or not math.isfinite(target):
        return 0.0
    power = 10 ** math.floor(math.log10(target))
    for step in (5, 2, 1):
        if step * power <= target:
            return step * power
    return power
