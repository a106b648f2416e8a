"""Metadata of the released CAS Landslide Dataset's 16 subdatasets (Xu et al. 2024).

``cas_subdatasets.csv`` (package data) is the paper's Table 2 (amount, acquisition time,
source, sensor, platform, resolution, licence) joined with Table 4 (region, trigger), with
the folder names and tile-name prefixes seen in the released archives. :func:`lookup`
recognises a released folder by its name (ASCII or full-width parentheses, any spacing,
case, ``_``/``-``) or, failing that, by the prefix of its tile names, and returns the
fields a project's subdataset stores. Unknown folders give None: the importer then keeps
its generic guesses.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

__all__ = [
    "ReleasedSubdataset",
    "load_table",
    "lookup",
    "match_folder",
    "match_prefix",
    "normalise",
]


@dataclass(frozen=True)
class ReleasedSubdataset:
    """One row of the paper's tables."""

    name: str
    amount: int
    acquisition_time: str
    source: str
    sensor_model: str
    platform: str  # UAV or SAT
    resolution_m: float
    licence: str
    region: str
    trigger: str
    folder_names: tuple[str, ...]
    tile_prefixes: tuple[str, ...]

    def fields(self) -> dict[str, Any]:
        """The subdataset fields a project stores (catalog ``subdatasets`` columns)."""
        notes = (
            f"CAS Landslide Dataset subdataset {self.name!r}: acquired {self.acquisition_time},"
            f" {self.sensor_model}, {self.amount} tiles in the paper (Xu et al. 2024, Tables 2 and 4)"
        )
        return {
            "sensor": self.platform,
            "resolution_m": self.resolution_m,
            "region": self.region,
            "trigger": self.trigger,
            "source": self.source,
            "licence": self.licence,
            "notes": notes,
        }

    def as_dict(self) -> dict[str, Any]:
        """Everything known, for display (``casdesk info --json``)."""
        return {
            **self.fields(),
            "released_name": self.name,
            "acquisition_time": self.acquisition_time,
            "sensor_model": self.sensor_model,
            "amount": self.amount,
        }


def normalise(name: str) -> str:
    """Fold a folder name for matching: NFKC (full-width parentheses and digits become
    ASCII), lower case, and drop spaces, ``_``, ``-`` and brackets ("Moxi town（UAV-0.2m）"
    and "moxi_town (UAV 0.2 m)" both give "moxitownuav0.2m")."""
    folded = unicodedata.normalize("NFKC", name).lower()
    return re.sub(r"[\s_\-()\[\]{}]+", "", folded)


@lru_cache(maxsize=1)
def load_table() -> tuple[ReleasedSubdataset, ...]:
    """The 16 released subdatasets, in the CSV's order."""
    text = (
        resources.files("casdesk.core.dataset")
        .joinpath("cas_subdatasets.csv")
        .read_text(encoding="utf-8")
    )
    rows = []
    for r in csv.DictReader(io.StringIO(text)):
        rows.append(
            ReleasedSubdataset(
                name=r["subdataset"].strip(),
                amount=int(r["amount"]),
                acquisition_time=r["acquisition_time"].strip(),
                source=r["source"].strip(),
                sensor_model=r["sensor"].strip(),
                platform=r["platform"].strip().upper(),
                resolution_m=float(r["resolution_m"]),
                licence=r["authorization"].strip(),
                region=r["region"].strip(),
                trigger=r["trigger"].strip(),
                folder_names=tuple(
                    n.strip() for n in r["folder_names_seen"].split(";") if n.strip()
                ),
                tile_prefixes=tuple(
                    p.strip() for p in r["tile_prefix_seen"].split(";") if p.strip()
                ),
            )
        )
    return tuple(rows)


@lru_cache(maxsize=1)
def _by_name() -> dict[str, ReleasedSubdataset]:
    out: dict[str, ReleasedSubdataset] = {}
    for row in load_table():
        for n in (row.name, *row.folder_names):
            out.setdefault(normalise(n), row)
    return out


def match_folder(folder_name: str) -> ReleasedSubdataset | None:
    """The released subdataset a folder name denotes: exact after :func:`normalise`, else
    the one name that matches with "uav"/"sat" dropped ("Moxi town (0.2m)" = "Moxi
    town（UAV-0.2m）"), of the folder's own sensor when the name says UAV or SAT."""
    key = normalise(folder_name)
    table = _by_name()
    if key in table:
        return table[key]
    bare = re.sub(r"uav|uva|sat", "", key)
    said = "UAV" if re.search(r"uav|uva", key) else "SAT" if "sat" in key else None
    hits = {
        row.name: row
        for k, row in table.items()
        if re.sub(r"uav|uva|sat", "", k) == bare and (said is None or row.platform == said)
    }
    return next(iter(hits.values())) if len(hits) == 1 else None


def match_prefix(stems: Iterable[str]) -> ReleasedSubdataset | None:
    """The released subdataset whose tile-name prefix (followed by digits) most of ``stems``
    carry; the longest prefix wins ("Haiti_Planet286" is Planet, not Sentinel "Haiti")."""
    prefixes = sorted(
        ((p.lower(), row) for row in load_table() for p in row.tile_prefixes),
        key=lambda x: -len(x[0]),
    )
    votes: dict[str, int] = {}
    total = 0
    for stem in stems:
        total += 1
        s = stem.lower()
        for p, row in prefixes:
            if s.startswith(p) and re.fullmatch(r"[\s_\-]*\d+", s[len(p) :]):
                votes[row.name] = votes.get(row.name, 0) + 1
                break
        if total >= 200:
            break
    if not votes:
        return None
    name, n = max(votes.items(), key=lambda kv: kv[1])
    if n * 2 < total:
        return None
    return next(r for r in load_table() if r.name == name)


def lookup(folder_name: str, stems: Iterable[str] = ()) -> ReleasedSubdataset | None:
    """Recognise a released subdataset by folder name, else by its tiles' name prefix."""
    return match_folder(folder_name) or match_prefix(stems)
