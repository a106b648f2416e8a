"""What the CAS Landslide Dataset paper (Xu et al., *Scientific Data* 11, 12, 2024) publishes
that casdesk's experiments compare with: its 16 subdatasets (Table 2, with the folder names
and tile prefixes of the released archives) and the results of Tables 5, 6 and 7.

Metrics are fractions (the paper prints percent). ``precision``, ``recall`` and ``iou``
are the landslide class's; ``f1_mean`` is the paper's "F1 score" column, the mean of the
two classes' F1 (the landslide F1 is not published); ``miou`` is the mean of the two
classes' IoU; ``accuracy`` is the overall pixel accuracy (OA).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass


@dataclass(frozen=True)
class CasSubdataset:
    """One subdataset of the released CAS Landslide Dataset (the paper's Table 2)."""

    name: str  # as the paper writes it
    amount: int  # tiles in the release
    sensor: str  # "UAV" or "SAT"
    resolution_m: float
    region: str
    folder_names: tuple[str, ...]  # folder names seen in the released archives
    tile_prefix: str | None = None  # prefix of the tile file names in the archive


CAS_SUBDATASETS: tuple[CasSubdataset, ...] = (
    CasSubdataset("Palu", 817, "SAT", 5, "Palu", ("palu",), "Palu"),
    CasSubdataset("Lombok", 436, "SAT", 5, "Lombok", ("Lombok",), "Lombok"),
    CasSubdataset("Hokkaido Iburi-Tobu", 1484, "SAT", 3, "Hokkaido Iburi-Tobu", ("Hokkaido Iburi-Tobu",), "Hokkaido"),
    CasSubdataset("Tiburon Peninsula (Sentinel)", 606, "SAT", 5, "Tiburon Peninsula, Haiti",
                  ("Tiburon Peninsula（Sentinel）",), "Haiti"),
    CasSubdataset("Tiburon Peninsula (Planet)", 325, "SAT", 4, "Tiburon Peninsula, Haiti",
                  ("Tiburon Peninsula（planet）",), "Haiti_Planet"),
    CasSubdataset("Mengdong", 1155, "SAT", 0.5, "Mengdong township, Yunnan", ("Mengdong Township",), "Mengdong"),
    CasSubdataset("Moxitaidi (SAT)", 652, "SAT", 0.6, "Luding, Sichuan", ("Moxitaidi (SAT)",), "Moxitaidi_Satellite"),
    CasSubdataset("Moxitaidi (UAV-0.6 m)", 984, "UAV", 0.6, "Luding, Sichuan", ("Moxitaidi (UAV-0.6m)",), "luding_UAV"),
    CasSubdataset("Moxitaidi (UAV-1 m)", 483, "UAV", 1, "Luding, Sichuan", ("Moxitaidi (UAV-1m)",), "Luding_1m_UAV"),
    CasSubdataset("Moxi town (0.2m)", 1635, "UAV", 0.2, "Luding, Sichuan", ("Moxi town（UAV-0.2m）",),
                  "moxizheng_0.2m_UAV"),
    CasSubdataset("Moxi town (1 m)", 160, "UAV", 1, "Luding, Sichuan", ("Moxi town（UAV-1m）",)),
    CasSubdataset("Longxi River (SAT)", 1769, "SAT", 0.5, "Longxi River, Sichuan", ("Longxi River(SAT)",), "LongxiheSAT"),
    CasSubdataset("Longxi River (UAV)", 2504, "UAV", 0.5, "Longxi River, Sichuan", ("Longxi River（UAV）",),
                  "longxihe_UAV"),
    CasSubdataset("Jiuzhai valley (0.2 m)", 5925, "UAV", 0.2, "Jiuzhai Valley, Sichuan",
                  ("Jiuzhai valley (UAV-0.2m)",), "jiuzzhaigou_0.2m_UVA"),
    CasSubdataset("Jiuzhai valley (0.5 m)", 1752, "UAV", 0.5, "Jiuzhai Valley, Sichuan",
                  ("Jiuzhai valley (UAV-0.5m)",), "jiuzzhaigou_0.5m_UVA"),
    CasSubdataset("Wenchuan", 178, "SAT", 5, "Wenchuan, Sichuan", ("Wenchuan",)),
)

# Table 7's validation set: "2119 images ... from the region of Moxitaidi" = 652 + 984 + 483.
MOXITAIDI = ("Moxitaidi (SAT)", "Moxitaidi (UAV-0.6 m)", "Moxitaidi (UAV-1 m)")


def fold(name: str) -> str:
    """A name folded for matching: NFKC (full-width brackets), lower case, no spaces,
    underscores, hyphens or brackets."""
    folded = unicodedata.normalize("NFKC", name).lower()
    return re.sub(r"[\s_\-()\[\]（）]+", "", folded)


def _variants(sub: CasSubdataset) -> set[str]:
    names = {sub.name, *sub.folder_names}
    if sub.tile_prefix:
        names.add(sub.tile_prefix)
    return {fold(n) for n in names}


def match_cas_subdataset(name: str) -> CasSubdataset | None:
    """The CAS subdataset a project subdataset (folder) name stands for, or None.

    Matches the paper's name, the released folder names and tile prefixes, ignoring case,
    spaces, separators and full-width brackets ("Moxitaidi (UAV-0.6m)", "moxitaidi_uav_0.6m"
    and "Moxitaidi（UAV-0.6 m）" are one subdataset).
    """
    key = fold(name)
    for sub in CAS_SUBDATASETS:
        if key in _variants(sub):
            return sub
    return None


def is_moxitaidi(name: str) -> bool:
    """Whether a project subdataset is one of the three Moxitaidi subdatasets of Table 7."""
    sub = match_cas_subdataset(name)
    if sub is not None:
        return sub.name in MOXITAIDI
    return "moxitaidi" in fold(name)


def _m(p: float, r: float, iou: float, f1: float, miou: float, oa: float) -> dict[str, float]:
    return {"precision": p / 100, "recall": r / 100, "iou": iou / 100, "f1_mean": f1 / 100,
            "miou": miou / 100, "accuracy": oa / 100}


# Table 5: model x training/validation set (random 7:3 split per subdataset).
TABLE5: dict[tuple[str, str], dict[str, float]] = {
    ("fcn", "UAV"): _m(75.045, 84.016, 65.057, 86.724, 77.456, 91.468),
    ("unet", "UAV"): _m(73.694, 86.394, 65.991, 87.136, 78.019, 91.658),
    ("deeplabv3plus", "UAV"): _m(89.289, 93.739, 84.261, 94.715, 90.142, 96.721),
    ("mffenet", "UAV"): _m(89.326, 93.839, 84.375, 94.756, 90.214, 96.746),
    ("fcn", "SAT"): _m(62.981, 84.142, 55.716, 84.391, 75.173, 94.972),
    ("unet", "SAT"): _m(61.795, 78.550, 51.179, 82.316, 72.619, 94.410),
    ("deeplabv3plus", "SAT"): _m(74.275, 89.187, 68.137, 89.675, 82.397, 96.881),
    ("mffenet", "SAT"): _m(74.141, 89.141, 67.998, 89.621, 82.318, 96.862),
    ("fcn", "UAV+SAT"): _m(70.847, 84.014, 61.757, 85.864, 76.515, 92.848),
    ("unet", "UAV+SAT"): _m(67.479, 82.360, 60.115, 85.311, 75.697, 92.653),
    ("deeplabv3plus", "UAV+SAT"): _m(86.128, 92.013, 80.125, 93.563, 88.316, 96.687),
    ("mffenet", "UAV+SAT"): _m(86.133, 92.121, 80.088, 93.608, 88.299, 96.754),
}

# Table 6: DeepLabV3+ on the SAT tiles before ("all") and after ("qc") quality control;
# "number" is the size of the SAT dataset (before the 7:3 split).
TABLE6: dict[str, dict[str, float]] = {
    "all": {**_m(72.365, 88.382, 66.275, 88.759, 81.233, 96.457), "number": 8658},
    "qc": {**_m(74.275, 89.187, 68.137, 89.675, 82.397, 96.881), "number": 7413},
}

# Table 7: DeepLabV3+ trained on the CAS tiles outside Moxitaidi, validated on the 2,119
# Moxitaidi tiles; "number" is the training set size. (The table's rows for other
# published datasets, Bijie, HR-GLDD, Landslide4Sense..., are not part of the CAS data.)
TABLE7: dict[str, dict[str, float]] = {
    "UAV": {**_m(71.714, 53.151, 43.806, 78.812, 68.733, 93.958), "number": 11972},
    "SAT": {**_m(58.984, 29.589, 24.449, 67.468, 58.061, 91.892), "number": 6762},
    "UAV+SAT": {**_m(66.741, 60.219, 46.319, 79.963, 69.885, 93.801), "number": 18734},
}
