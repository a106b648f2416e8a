"""A Cloud-Optimized GeoTIFF layout check for tests (no osgeo_utils / rio-cogeo here).

The same rules as GDAL's ``validate_cloud_optimized_geotiff.py``: the file is tiled, the
full-resolution image is the first IFD and the overviews follow from largest to smallest,
every IFD comes before any image data, and the data of each smaller overview lies before
the data of the larger one (the full-resolution image last), so a reader fetches the
header in one request and an overview without reading the image.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 16: 8, 17: 8, 18: 8}


@dataclass
class Ifd:
    offset: int
    tags: dict[int, list[int]] = field(default_factory=dict)

    @property
    def size(self) -> tuple[int, int]:
        return self.tags[256][0], self.tags[257][0]

    @property
    def data_offsets(self) -> list[int]:
        return [o for o, n in zip(self.tags.get(324) or self.tags.get(273, []),
                                  self.tags.get(325) or self.tags.get(279, []), strict=True) if n]

    @property
    def is_mask(self) -> bool:
        return bool(self.tags.get(254, [0])[0] & 4)


def read_ifds(path: Path) -> tuple[bytes, list[Ifd]]:
    data = Path(path).read_bytes()
    bo = "<" if data[:2] == b"II" else ">"
    big = struct.unpack(bo + "H", data[2:4])[0] == 43
    off = struct.unpack(bo + ("Q" if big else "I"), data[8:16] if big else data[4:8])[0]
    ifds = []
    while off:
        n = struct.unpack(bo + ("Q" if big else "H"), data[off:off + (8 if big else 2)])[0]
        pos = off + (8 if big else 2)
        ifd = Ifd(off)
        for _ in range(n):
            if big:
                tag, typ, count = struct.unpack(bo + "HHQ", data[pos:pos + 12])
                raw, inline = data[pos + 12:pos + 20], 8
            else:
                tag, typ, count = struct.unpack(bo + "HHI", data[pos:pos + 8])
                raw, inline = data[pos + 8:pos + 12], 4
            size = _SIZES.get(typ, 1) * count
            if size > inline:
                at = struct.unpack(bo + ("Q" if big else "I"), raw)[0]
                raw = data[at:at + size]
            fmt = {3: "H", 4: "I", 16: "Q", 8: "h", 9: "i", 17: "q"}.get(typ)
            if fmt is not None:
                ifd.tags[tag] = list(struct.unpack(bo + fmt * count, raw[:size]))
            pos += 20 if big else 12
        ifds.append(ifd)
        off = struct.unpack(bo + ("Q" if big else "I"), data[pos:pos + (8 if big else 4)])[0]
    return data, ifds


def cog_errors(path: Path) -> list[str]:
    """What makes ``path`` not a valid COG (empty when it is one)."""
    data, ifds = read_ifds(path)
    errors = []
    images = [i for i in ifds if not i.is_mask]
    if not images:
        return ["no image"]
    if any(322 not in i.tags for i in images):
        errors.append("not tiled")
    sizes = [i.size for i in images]
    if sizes != sorted(sizes, reverse=True):
        errors.append(f"the full-resolution image is not first or the overviews are not in decreasing size: {sizes}")
    first_data = min((o for i in ifds for o in i.data_offsets), default=len(data))
    if any(i.offset > first_data for i in ifds):
        errors.append("an IFD comes after image data (overviews added after the main image)")
    for larger, smaller in zip(images, images[1:], strict=False):
        if smaller.data_offsets and larger.data_offsets and max(smaller.data_offsets) > min(larger.data_offsets):
            errors.append(f"the data of the {smaller.size} overview is not before the {larger.size} image's")
    if max(max(w, h) for w, h in sizes) > 512 and len(images) == 1:
        errors.append("no overviews")
    if b"LAYOUT=IFDS_BEFORE_DATA" not in data[:1024]:
        errors.append("no GDAL structural metadata saying LAYOUT=IFDS_BEFORE_DATA")
    return errors
