"""Manual decisions (history kept, the latest per tile wins), the kept tiles under the
working rules, and the per-tile QC report."""

from __future__ import annotations

import csv
import getpass
import math
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from casdesk.core.errors import OutputError
from casdesk.core.project.catalog import Catalog, utc_now
from casdesk.core.qc.detectors import METRICS
from casdesk.core.qc.model import ACCEPTED, MANUAL_ACCEPT, STATE_NAMES, QCError, Rule
from casdesk.core.qc.presets import current_rules
from casdesk.core.qc.shared import shared_table
from casdesk.core.qc.table import evaluate, failed_rule_names


# --------------------------------------------------------------------------- decisions
def set_decision(
    catalog: Catalog,
    tile_ids: Iterable[int],
    decision: str,
    note: str | None = None,
    author: str | None = None,
) -> None:
    """Record a manual decision (``accept``, ``reject``, or ``clear`` to remove it) for
    tiles. History is kept; the latest row per tile wins."""
    if decision not in ("accept", "reject", "clear"):
        raise QCError(f"decision must be accept, reject or clear, not {decision!r}")
    if author is None:
        try:
            author = getpass.getuser()
        except (KeyError, OSError):
            author = None
    now = utc_now()
    rows = [(int(t), decision, note, author, now) for t in tile_ids]
    catalog.qc.add_decisions(rows)


def decision_history(catalog: Catalog, tile_id: int) -> list[dict[str, Any]]:
    return catalog.qc.decision_history(tile_id)


def accepted_tile_ids(catalog: Catalog, rules: Sequence[Rule] | None = None) -> list[int]:
    """Tiles to keep: accepted by the rules or manually accepted (flagged and pending tiles
    are not kept until a person decides or metrics exist). ``rules`` default: the project's
    working rules (:func:`current_rules`, what the QC panel shows)."""
    table = shared_table(catalog)
    states, _ = evaluate(table, current_rules(catalog) if rules is None else rules)
    keep = (states == ACCEPTED) | (states == MANUAL_ACCEPT)
    return [int(t) for t in table.tile_ids[keep]]


def kept_tile_ids(catalog: Catalog) -> set[int] | None:
    """Training's kept tiles under the project's working rules (what the QC panel shows as
    "kept"), or None when the project holds no QC information at all (QC never run: every
    tile counts)."""
    if not catalog.qc.has_results():
        return None
    return set(accepted_tile_ids(catalog))


# --------------------------------------------------------------------------- report
def write_report(catalog: Catalog, out: str | Path, rules: Sequence[Rule] | None = None) -> int:
    """One CSV row per tile (metrics, state, failed rules, manual note); written to a temp
    file beside ``out`` and renamed, so a reader never sees half a report. Returns rows."""
    rules = current_rules(catalog) if rules is None else list(rules)
    table = shared_table(catalog)
    states, failed = evaluate(table, rules)
    out = Path(out)
    if not out.parent.is_dir():
        raise OutputError("the folder does not exist", out.parent, "create it first")
    names = list(METRICS)
    subs, sensors = table.subdatasets, table.sensors
    fd, tmp = tempfile.mkstemp(prefix=out.name + ".", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["tile_id", "subdataset", "name", "sensor", *names, "state", "failed_rules", "note"])
            for i in range(len(table)):
                tid = int(table.tile_ids[i])
                w.writerow(
                    [
                        tid,
                        subs[i],
                        table.names[i],
                        sensors[i],
                        *("" if math.isnan(table.metrics[m][i]) else f"{table.metrics[m][i]:.6g}" for m in names),
                        STATE_NAMES[int(states[i])],
                        "; ".join(failed_rule_names(failed[i], rules)),
                        table.notes.get(tid, ""),
                    ]
                )
        os.replace(tmp, out)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise OutputError(f"cannot write the report ({exc.strerror or exc})", out, "check the folder") from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(table)
