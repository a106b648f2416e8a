"""The project store is the only place with SQL (issue 14).

Everything under ``casdesk/core/project/`` (the catalog: connection, schema, migrations, and
one store per concept in ``stores/``) may import ``sqlite3`` and hold SQL; nothing else may.
The scan reads the code with :mod:`ast`, so SQL in comments or docstrings that merely mention
a table does not count, while SQL split over implicit concatenations or f-strings does.

Nor may code elsewhere in casdesk run SQL through the catalog's raw entry points
(``catalog.execute``, ``catalog.query``, ``catalog.connection``, the connection that
``catalog.transaction()`` yields): outside the store, ``with catalog.transaction():`` is a
unit of work that makes several store calls atomic, never a way to the connection.
"""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "casdesk"
STORE = "core/project/"

# Modules not yet moved behind the stores, each with why. This list may only shrink: an
# entry whose module no longer holds SQL fails the test, so it is removed when moved.
ALLOWLIST: dict[str, str] = {
    # empty: every module reads and writes the project through casdesk.core.project
}

_SQL = re.compile(
    r"\b(SELECT\b.+\bFROM|INSERT\s+(OR\s+\w+\s+)?INTO|UPDATE\s+\S+\s+SET|DELETE\s+FROM"
    r"|CREATE\s+(TEMP\s+|UNIQUE\s+)?(TABLE|INDEX|VIEW|TRIGGER)|DROP\s+(TABLE|INDEX)|ALTER\s+TABLE)\b",
    re.DOTALL,  # keywords in capitals, as all of casdesk's SQL is written: prose never matches
)


_KEYWORDS = ("SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "DROP", "ALTER")


def _strings(tree: ast.AST) -> list[tuple[int, str]]:
    """String literals, an f-string as its literal parts joined by ``?`` (where the values go)."""
    out: list[tuple[int, str]] = []
    inside_fstring: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            parts = [v.value if isinstance(v, ast.Constant) and isinstance(v.value, str) else "?"
                     for v in node.values]
            inside_fstring.update(id(v) for v in node.values)
            out.append((node.lineno, "".join(parts)))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in inside_fstring:
            out.append((node.lineno, node.value))
    return out


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(body[0].value.lineno)
    return ids


def sql_uses(source: str) -> list[str]:
    """Where ``source`` imports sqlite3 or holds an SQL statement, as ``line: what``."""
    tree = ast.parse(source)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            continue
        if any(n.split(".")[0] == "sqlite3" for n in names):
            found.append(f"{node.lineno}: import sqlite3")
    docs = _docstrings(tree)
    for line, text in _strings(tree):
        if line not in docs and any(k in text for k in _KEYWORDS) and _SQL.search(text):
            found.append(f"{line}: {' '.join(text.split())[:80]}")
    return found


# The catalog's raw SQL entry points (casdesk.core.project.connection.ProjectConnection) and
# what a sqlite3 connection or cursor offers: calling or reading them outside the store
# means running SQL there.
_RAW_CALLS = frozenset({"execute", "executemany", "executescript", "query"})
_RAW_ATTRIBUTES = frozenset({"connection", "_db"})


def _is_spatial_query(call: ast.Call) -> bool:
    """``tree.query(geometry, predicate=...)``: a shapely STRtree lookup, not SQL."""
    receiver = call.func.value if isinstance(call.func, ast.Attribute) else None
    name = (receiver.id if isinstance(receiver, ast.Name)
            else receiver.attr if isinstance(receiver, ast.Attribute) else "")
    return name.lower().endswith("tree") or any(k.arg == "predicate" for k in call.keywords)


def raw_sql_uses(source: str) -> list[str]:
    """Where ``source`` reaches the catalog's raw SQL entry points, as ``line: what``."""
    tree = ast.parse(source)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            name = node.func.attr
            if name in _RAW_CALLS and not (name == "query" and _is_spatial_query(node)):
                found.append(f"{node.lineno}: .{name}(...)")
        elif isinstance(node, ast.Attribute) and node.attr in _RAW_ATTRIBUTES:
            found.append(f"{node.lineno}: .{node.attr}")
        elif isinstance(node, ast.With | ast.AsyncWith):
            for item in node.items:
                call = item.context_expr
                if (item.optional_vars is not None and isinstance(call, ast.Call)
                        and isinstance(call.func, ast.Attribute) and call.func.attr == "transaction"):
                    found.append(f"{node.lineno}: with .transaction() as ... (the raw connection)")
    return found


def _modules_outside_the_store() -> list[tuple[str, str]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if not rel.startswith(STORE):
            out.append((rel, path.read_text(encoding="utf-8")))
    return out


@functools.cache
def _scan() -> dict[str, list[str]]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith(STORE):
            continue
        text = path.read_text(encoding="utf-8")
        if "sqlite3" not in text and not any(k in text for k in _KEYWORDS):
            continue  # cannot hold SQL: skip the (slow) syntax-tree walk
        uses = sql_uses(text)
        if uses:
            out[rel] = uses
    return out


def test_no_sql_outside_the_project_store() -> None:
    leaks = {m: u for m, u in _scan().items() if m not in ALLOWLIST}
    assert not leaks, "SQL outside casdesk/core/project/ (add a store method instead):\n" + "\n".join(
        f"  casdesk/{m}:{u}" for m, uses in leaks.items() for u in uses
    )


def test_no_raw_sql_calls_outside_the_project_store() -> None:
    """``Catalog.execute/query/connection`` and ``transaction() as db`` are the store's own."""
    leaks = {m: u for m, text in _modules_outside_the_store() if (u := raw_sql_uses(text))}
    assert not leaks, (
        "raw SQL through the catalog outside casdesk/core/project/ (add a store method instead;"
        " `with catalog.transaction():` without `as` groups store calls):\n"
        + "\n".join(f"  casdesk/{m}:{u}" for m, uses in leaks.items() for u in uses)
    )


def test_allowlist_only_names_modules_that_still_hold_sql() -> None:
    found = _scan()
    stale = [m for m in ALLOWLIST if m not in found]
    assert not stale, f"moved behind the stores: remove from ALLOWLIST: {stale}"


@pytest.mark.parametrize(
    "source",
    [
        "import sqlite3\n",
        "from sqlite3 import Row\n",
        'q = "SELECT id FROM tiles WHERE name = ?"\n',
        'q = ("INSERT INTO runs(name)"\n     " VALUES (?)")\n',
        'q = f"UPDATE {table} SET x = ?"\n',
        'q = f"DELETE FROM labels WHERE {col} = ?"\n',
        'def f(db):\n    db.execute("CREATE INDEX t_x ON t(x)")\n',
    ],
)
def test_scanner_finds_sql(source: str) -> None:
    assert sql_uses(source)


@pytest.mark.parametrize(
    "source",
    [
        '"""Reads the tiles table; select a tile from the list."""\n',
        'msg = "select the tiles to delete from the view"\n',
        "# SELECT id FROM tiles\nx = 1\n",
        'label = "Update"\n',
        'msg = "Select the tiles to delete from the view"\n',
    ],
)
def test_scanner_ignores_prose(source: str) -> None:
    assert not sql_uses(source)


@pytest.mark.parametrize(
    "source",
    [
        'rows = catalog.query("PRAGMA table_info(tiles)")\n',
        "n = self.catalog.execute(sql, params).fetchone()\n",
        "cat.connection.commit()\n",
        "db = catalog._db\n",
        "with catalog.transaction() as db:\n    pass\n",
        "with open(p) as f, cat.transaction() as db:\n    pass\n",
        "catalog.connection.executemany(sql, rows)\n",
    ],
)
def test_raw_sql_scanner_finds_raw_calls(source: str) -> None:
    assert raw_sql_uses(source)


@pytest.mark.parametrize(
    "source",
    [
        "with catalog.transaction():\n    catalog.runs.finish(1)\n",
        'hits = tree.query(box, predicate="intersects")\n',
        "hits = self._tree.query(box)\n",
        "rows = catalog.tile_rows.overlapping(1, 0, 0, 9, 9)\n",
        "self.signal.connect(slot)\n",
    ],
)
def test_raw_sql_scanner_ignores_store_calls(source: str) -> None:
    assert not raw_sql_uses(source)
