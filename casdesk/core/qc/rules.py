"""Quality control: per-tile metrics, threshold rules, manual decisions, presets.

The paper (Xu et al. 2024) drops tiles with more than 30 % boundary fill, less than 0.1 %
landslide pixels, more than 80 % cloud (satellite tiles) and severe mosaic seams; automated
metrics flag tiles and a person decides on the flagged ones. Here:

* :func:`compute_metrics` measures every registered metric (:data:`METRICS`) once per tile,
  in a process pool over every core, and stores it in ``qc_metrics``. A value is recomputed only when the
  tile was modified after it was computed or the metric's version changed.
* :func:`load_table` loads all metrics and manual decisions into a :class:`QCTable` of
  numpy arrays; :func:`evaluate` and :func:`count_states` are pure numpy, so moving a
  threshold recounts 100,000 tiles in about a millisecond without touching the disk.
* Manual decisions (``qc_decisions``, history, the latest row per tile wins) override the
  rules, so they survive threshold changes and metric recomputation.

The parts live in :mod:`~casdesk.core.qc.model` (states, :class:`Rule`, the paper's
rules), :mod:`~casdesk.core.qc.presets` (presets, working rules), :mod:`~casdesk.core.qc.scan`
(measuring), :mod:`~casdesk.core.qc.table` (the table, evaluation, counts) and
:mod:`~casdesk.core.qc.decisions` (manual decisions, kept tiles, report); this module is
their public face.
"""

from __future__ import annotations

from casdesk.core.qc.decisions import (
    accepted_tile_ids,
    decision_history,
    kept_tile_ids,
    set_decision,
    write_report,
)
from casdesk.core.qc.detectors import METRICS, Metric, TileData, register_metric
from casdesk.core.qc.model import (
    ACCEPTED,
    FLAGGED,
    MANUAL_ACCEPT,
    MANUAL_REJECT,
    N_STATES,
    PAPER_DEFAULTS,
    PAPER_PRESET,
    PENDING,
    REJECTED,
    SEAM_DEFAULT,
    STATE_KEYS,
    STATE_NAMES,
    QCError,
    Rule,
    paper_defaults,
    with_threshold,
)
from casdesk.core.qc.presets import (
    active_preset,
    current_rules,
    list_presets,
    load_preset,
    preset_state,
    save_preset,
    set_active_preset,
    set_current_rules,
)
from casdesk.core.qc.scan import (
    CHUNK,
    FLUSH_SECONDS,
    FLUSH_TILES,
    PROCESS_MIN_TILES,
    compute_metrics,
    measure_tile,
)
from casdesk.core.qc.shared import shared_table
from casdesk.core.qc.table import (
    QCTable,
    count_states,
    describe_failure,
    evaluate,
    failed_rule_names,
    failure_details,
    latest_decisions,
    load_table,
    stale_tile_ids,
    update_decisions,
    update_table,
)

__all__ = [
    "ACCEPTED",
    "CHUNK",
    "FLAGGED",
    "FLUSH_SECONDS",
    "FLUSH_TILES",
    "MANUAL_ACCEPT",
    "MANUAL_REJECT",
    "METRICS",
    "N_STATES",
    "PAPER_DEFAULTS",
    "PAPER_PRESET",
    "PENDING",
    "PROCESS_MIN_TILES",
    "REJECTED",
    "SEAM_DEFAULT",
    "STATE_KEYS",
    "STATE_NAMES",
    "Metric",
    "QCError",
    "QCTable",
    "Rule",
    "TileData",
    "accepted_tile_ids",
    "active_preset",
    "compute_metrics",
    "count_states",
    "current_rules",
    "decision_history",
    "describe_failure",
    "evaluate",
    "failed_rule_names",
    "failure_details",
    "kept_tile_ids",
    "latest_decisions",
    "list_presets",
    "load_preset",
    "load_table",
    "measure_tile",
    "paper_defaults",
    "preset_state",
    "register_metric",
    "save_preset",
    "set_active_preset",
    "set_current_rules",
    "set_decision",
    "shared_table",
    "stale_tile_ids",
    "update_decisions",
    "update_table",
    "with_threshold",
    "write_report",
]
