"""Named rule sets (presets) and the project's working rules (what every view uses)."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

from casdesk.core.project.catalog import Catalog
from casdesk.core.qc.model import PAPER_PRESET, QCError, Rule, paper_defaults

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- presets
_ACTIVE_KEY = "qc.active_preset"


def list_presets(catalog: Catalog) -> list[str]:
    """Preset names, the built-in paper preset first."""
    names = catalog.qc.preset_names()
    return [PAPER_PRESET, *[n for n in names if n != PAPER_PRESET]]


def save_preset(catalog: Catalog, name: str, rules: Sequence[Rule], activate: bool = True) -> None:
    """Store ``rules`` under ``name`` (replacing a preset of that name). With ``activate``
    (the panel's "Save preset"), the working rules are named: they become the active
    preset's rules, unchanged, so nothing else in the project moves."""
    name = name.strip()
    if not name or name == PAPER_PRESET:
        raise QCError(
            f"cannot save a preset named {name!r}", catalog.path, "pick another name; the paper preset is built in"
        )
    text = json.dumps([r.to_dict() for r in rules])
    catalog.qc.put_preset(name, text)
    if activate:
        set_active_preset(catalog, name)


def load_preset(catalog: Catalog, name: str) -> list[Rule]:
    if name == PAPER_PRESET:
        return paper_defaults()
    text = catalog.qc.preset_text(name)
    if text is None:
        raise QCError(f"no QC preset named {name!r}", catalog.path, f"presets: {', '.join(list_presets(catalog))}")
    try:
        return [Rule.from_dict(d) for d in json.loads(text)]
    except (ValueError, KeyError, TypeError) as exc:
        raise QCError(f"QC preset {name!r} is damaged ({exc})", catalog.path, "save it again") from exc


def set_active_preset(catalog: Catalog, name: str) -> None:
    """Make preset ``name`` the project's current rule set (its rules become the working
    rules every view uses)."""
    if name != PAPER_PRESET and name not in list_presets(catalog):
        raise QCError(f"no QC preset named {name!r}", catalog.path)
    rules = load_preset(catalog, name)
    with catalog.transaction():
        catalog.set_meta(_ACTIVE_KEY, name)
        catalog.set_meta(_CURRENT_KEY, json.dumps([r.to_dict() for r in rules]))


def active_preset(catalog: Catalog) -> str:
    """The preset the working rules started from (see :func:`preset_state`)."""
    name = catalog.get_meta(_ACTIVE_KEY, PAPER_PRESET) or PAPER_PRESET
    return name if name in list_presets(catalog) else PAPER_PRESET


_CURRENT_KEY = "qc.current_rules"


def current_rules(catalog: Catalog) -> list[Rule]:
    """The project's working rules: what the QC panel's sliders show, and what the browser,
    ``export --accepted-only``, training's kept tiles and the CLI all use. Persisted in the
    project (:func:`set_current_rules`); a project that never changed them uses the active
    preset (the paper defaults unless the user chose another)."""
    text = catalog.get_meta(_CURRENT_KEY, None)
    if text:
        try:
            return [Rule.from_dict(d) for d in json.loads(text)]
        except (ValueError, KeyError, TypeError, QCError) as exc:
            log.warning("QC: the stored working rules are damaged (%s); using the active preset", exc)
    return load_preset(catalog, active_preset(catalog))


def set_current_rules(catalog: Catalog, rules: Sequence[Rule]) -> None:
    """Store the working rules (a slider moved): every view reads them from here. The
    active preset's name is kept; :func:`preset_state` tells whether they differ from it."""
    catalog.set_meta(_CURRENT_KEY, json.dumps([r.to_dict() for r in rules]))


def preset_state(catalog: Catalog, rules: Sequence[Rule] | None = None) -> tuple[str, bool]:
    """(name of the preset the working rules came from, True when they were changed since:
    unsaved changes, shown as "name (modified)")."""
    name = active_preset(catalog)
    rules = current_rules(catalog) if rules is None else list(rules)
    return name, [r.to_dict() for r in rules] != [r.to_dict() for r in load_preset(catalog, name)]


