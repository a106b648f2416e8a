"""Detector accuracy on released tiles and defects made from them (issue 16).

The fast tests use the released tiles and a few defects per kind; the slow test runs the
whole evaluation set of ``benchmarks/bench_qc_accuracy.py`` and asserts its numbers (with
margins). Numbers and their meaning: docs/qc.md.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from casdesk.core.qc import evalset
from casdesk.core.qc.rules import PAPER_DEFAULTS

PUBLIC = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "public"


def sources(limit: int | None = None) -> list[Path]:
    found = evalset.find_sources(PUBLIC)
    if len(found) < 10:
        pytest.skip(f"released tiles not found under {PUBLIC}")
    if limit is None:
        return found
    # a spread over both folders and sensors
    return [found[i] for i in np.linspace(0, len(found) - 1, limit).round().astype(int)]


def measured(kinds: tuple[str, ...], limit: int | None) -> tuple[list[evalset.Case], dict]:
    cases = list(evalset.build_cases(sources(limit), kinds=kinds))
    values = evalset.measure_cases(cases)
    return cases, evalset.summarise(cases, values, PAPER_DEFAULTS)


@pytest.fixture(scope="module")
def clean() -> tuple[list[evalset.Case], list[dict[str, float]]]:
    cases = list(evalset.build_cases(sources(), kinds=("clean",)))
    return cases, evalset.measure_cases(cases)


def test_no_released_tile_rejected_and_few_flagged(clean) -> None:
    cases, values = clean
    summary = evalset.summarise(cases, values, PAPER_DEFAULTS)
    assert len(cases) >= 20
    for metric, row in summary.items():
        assert row["clean_rejected"] == 0.0, metric
        assert row["clean_flagged"] <= 0.10, metric


def test_palu0117_is_not_rejected(clean) -> None:
    # Palu0117 passed the authors' QC; its faint vertical seam may be flagged, never rejected
    cases, values = clean
    seam = next(r for r in PAPER_DEFAULTS if r.metric == "seam_score")
    palu = next(v for c, v in zip(cases, values, strict=True) if c.name == "Palu0117")
    assert palu["seam_score"] <= seam.threshold + seam.margin


def orientations(img: np.ndarray) -> list[np.ndarray]:
    """The 8 rotations and mirror images of a (bands, rows, cols) tile."""
    turned = [np.rot90(img, k, axes=(1, 2)) for k in range(4)]
    return [np.ascontiguousarray(a) for a in turned + [t[:, :, ::-1] for t in turned]]


@pytest.mark.parametrize("name", ["Palu0117", "10026"])
def test_the_flagged_released_tiles_are_not_rejected_in_any_orientation(name: str) -> None:
    """A released tile turned or mirrored is still a tile the authors kept. Palu0117 and
    10026 score highest of the 22 (19.6 and 19.9); a seam version that scored Palu0117
    27.4-28.5 in 4 of its 8 orientations (a candidate ranked by its steady step) was
    rejecting it."""
    path = next((p for p in sources() if p.stem == name), None)
    if path is None:
        pytest.skip(f"{name} not among the released tiles")
    seam = next(r for r in PAPER_DEFAULTS if r.metric == "seam_score")
    cases = [evalset.Case(f"{name}/{k}", "clean", img, {}) for k, img in enumerate(orientations(evalset.read_rgb(path)))]
    scores = [v["seam_score"] for v in evalset.measure_cases(cases, ("seam_score",))]
    assert max(scores) <= seam.threshold + seam.margin, scores


@pytest.mark.slow
def test_no_released_tile_is_rejected_in_any_orientation() -> None:
    seam = next(r for r in PAPER_DEFAULTS if r.metric == "seam_score")
    cases = [
        evalset.Case(f"{p.stem}/{k}", "clean", img, {})
        for p in sources() for k, img in enumerate(orientations(evalset.read_rgb(p)))
    ]
    scores = [v["seam_score"] for v in evalset.measure_cases(cases, ("seam_score",))]
    rejected = [c.name for c, s in zip(cases, scores, strict=True) if s > seam.threshold + seam.margin]
    assert not rejected
    assert sum(s > seam.threshold - seam.margin for s in scores) <= 0.10 * len(scores)


def test_fill_within_003_whatever_surrounds_it() -> None:
    cases, summary = measured(("fill",), 6)
    assert summary["fill_fraction"]["defects_n"] == 24
    # black wedges beside shadows, white ones beside saturated scars, fixed-colour bands
    assert summary["fill_fraction"]["within_goal"] == 1.0
    assert summary["fill_fraction"]["max_error"] <= 0.03
    assert {c.tags[0] for c in cases} >= {"wedge0+shadow", "wedge255+scar"} or len(cases) == 24


def test_cloud_cover_within_01() -> None:
    """Every synthetic cloud on every released tile (66 cases) within +-0.1 of its cover;
    version 3 missed 2 (bright bare soil beside the cloud: Mengdong0201 +0.158, 10120 +0.113)."""
    _, summary = measured(("cloud",), None)
    cloud = summary["cloud_fraction"]
    assert cloud["defects_n"] == 66
    assert cloud["within_goal"] == 1.0 and cloud["max_error"] <= 0.1, cloud


def test_traps_are_not_fill_or_cloud() -> None:
    _, summary = measured(("trap",), 4)
    for metric in ("fill_fraction", "cloud_fraction", "seam_score"):
        assert summary[metric]["trap_rejected"] == 0.0


def test_strong_brightness_seam_is_caught() -> None:
    img = evalset.read_rgb(sources()[3])
    rng = np.random.default_rng(5)
    caught = 0
    for _ in range(3):
        case = evalset.Case("s", "seam", evalset.add_radiometric_seam(img, rng, 40, False, False), {"dn": 40, "px": 0})
        value = evalset.measure_cases([case], ("seam_score",))[0]["seam_score"]
        seam = next(r for r in PAPER_DEFAULTS if r.metric == "seam_score")
        caught += value >= seam.threshold - seam.margin
    assert caught >= 2


def test_one_band_shift_is_caught() -> None:
    # a 30 DN shift of one band on one side of a line: a clean step in R - G or B - G
    rng = np.random.default_rng(7)
    seam = next(r for r in PAPER_DEFAULTS if r.metric == "seam_score")
    chosen = sources(4)
    caught = 0
    for path in chosen:
        img = evalset.read_rgb(path)
        case = evalset.Case("s", "seam", evalset.add_radiometric_seam(img, rng, 30, True, False), {"dn": 30, "px": 0})
        value = evalset.measure_cases([case], ("seam_score",))[0]["seam_score"]
        caught += value >= seam.threshold - seam.margin
    assert caught >= len(chosen) - 1


def displaced(img: np.ndarray, shift: int) -> np.ndarray:
    """Right of a vertical line through the centre, the scene displaced ``shift`` px to the
    right (into that side): the band just right of the line repeats the left side's content."""
    out = img.copy()
    half = img.shape[2] // 2
    out[:, :, half:] = img[:, :, half - shift : img.shape[2] - shift]
    return out


@pytest.mark.parametrize("shift", [8, 16, 32])
def test_displaced_scene_is_caught(shift: int) -> None:
    seam = next(r for r in PAPER_DEFAULTS if r.metric == "seam_score")
    caught = 0
    chosen = sources(4)
    for path in chosen:
        img = evalset.read_rgb(path)
        case = evalset.Case("s", "seam", displaced(img, shift), {"dn": 0, "px": shift})
        value = evalset.measure_cases([case], ("seam_score",))[0]["seam_score"]
        caught += value >= seam.threshold - seam.margin
    assert caught >= len(chosen) - 1


def test_copied_strip_of_a_displaced_scene() -> None:
    # the band a displaced scene repeats is a solid strip of copied pixels at one lag, found
    # by its repeated patches; released tiles repeat no patches at any lag that often
    from casdesk.core.qc.seam_dup import copy_profile

    for path in sources(4):
        img = evalset.read_rgb(path)
        clean = copy_profile(np.ascontiguousarray(img.transpose(1, 2, 0)))
        moved = copy_profile(np.ascontiguousarray(displaced(img, 8).transpose(1, 2, 0)))
        assert clean[0] <= 0.001, path.name
        assert moved[0] >= 0.003 and (moved[1], abs(moved[2])) == (0, 8), path.name


def test_resampled_displaced_scene_is_caught() -> None:
    # a copy resampled at a sub-pixel shift is no exact copy: the autocorrelation's peak
    # (kept beside the copied-pixel measure) still sees it
    seam = next(r for r in PAPER_DEFAULTS if r.metric == "seam_score")
    chosen = sources(4)
    caught = 0
    for path in chosen:
        hwc = np.ascontiguousarray(evalset.read_rgb(path).transpose(1, 2, 0))
        m = np.array([[1, 0, 13.25], [0, 1, 0]], np.float32)
        moved = cv2.warpAffine(hwc, m, (hwc.shape[1], hwc.shape[0]), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        half = hwc.shape[1] // 2
        hwc[:, half:] = moved[:, half:]
        case = evalset.Case("s", "seam", np.ascontiguousarray(hwc.transpose(2, 0, 1)), {"dn": 0, "px": 13.25})
        value = evalset.measure_cases([case], ("seam_score",))[0]["seam_score"]
        caught += value >= seam.threshold - seam.margin
    assert caught >= len(chosen) - 1


@pytest.mark.slow
def test_whole_evaluation_set_meets_the_measured_numbers() -> None:
    """The benchmark's numbers as assertions (docs/qc.md has the table): fill and cloud
    meet the issue's goals; the seam detector's measured rates (below the issue's goal of
    90 % of seams >= 15 DN / 8 px, see docs/qc.md) must not get worse."""
    cases = list(evalset.build_cases(sources()))
    summary = evalset.summarise(cases, evalset.measure_cases(cases), PAPER_DEFAULTS)
    fill, cloud, seam = summary["fill_fraction"], summary["cloud_fraction"], summary["seam_score"]
    assert fill["within_goal"] == 1.0 and fill["clean_rejected"] == 0.0
    assert cloud["within_goal"] == 1.0 and cloud["clean_rejected"] == 0.0 and cloud["clean_flagged"] == 0.0
    assert seam["clean_rejected"] == 0.0 and seam["clean_flagged"] <= 0.10
    assert seam["trap_rejected"] == 0.0
    # measured (version 13) 62.5 % / 56.8 % / 59.7 % (seed 16; seed 17: 58.0 % / 58.0 % / 58.0 %)
    assert seam["radiometric_severe_caught"] >= 0.60
    assert seam["geometric_severe_caught"] >= 0.54
    assert seam["severe_caught"] >= 0.58


def test_the_resampled_variant_changes_only_the_geometric_seams() -> None:
    """``build_cases(resampled=True)`` (bench_qc_accuracy --resampled): the geometric seams
    are shifted a further fraction of a pixel and interpolated, so their displaced side
    holds no exact copies; every other case is the default set's."""
    src = sources(2)
    plain = list(evalset.build_cases(src))
    resampled = list(evalset.build_cases(src, resampled=True))
    assert [c.name for c in plain] == [c.name for c in resampled]
    geometric = 0
    for a, b in zip(plain, resampled, strict=True):
        if a.kind == "seam" and a.truth["px"] > 0:
            geometric += 1
            assert a.side is not None and b.side is not None and np.array_equal(a.side, b.side)
            assert not np.array_equal(a.image[:, a.side], b.image[:, b.side])
            assert np.array_equal(a.image[:, ~a.side], b.image[:, ~b.side])  # the other scene stays
        else:
            assert np.array_equal(a.image, b.image), a.name
    assert geometric == 2 * len(evalset.SEAM_PX)


def test_jpeg_compressed_released_tiles_are_neither_rejected_nor_lose_their_fill() -> None:
    """The released tiles after a JPEG round trip (quality 90), measured as JPEG files are
    (``lossy``): every fill strip within +-0.03 and no tile rejected. A coarse straightness
    test applied to small regions too made a 0.5 % false fill on jiuzzhaigou_0.2m_UVA0155
    (a river's bend at the border) and moved its seam score from 22.8 to 29.1 (rejected)."""
    paths = sources()
    cases = [c for c in evalset.jpeg_cases(paths, (90,))]
    values = evalset.measure_cases(cases)
    seam = next(r for r in PAPER_DEFAULTS if r.metric == "seam_score")
    for case, v in zip(cases, values, strict=True):
        assert v["fill_fraction"] == pytest.approx(case.truth["fill"], abs=0.03), case.name
        assert v["seam_score"] <= seam.threshold + seam.margin, case.name
        assert v["cloud_fraction"] <= 0.1, case.name
