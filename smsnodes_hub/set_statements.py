"""Set-based statements (a batch's items read as rows, one array per column) and their
one-item form.

A lane's batch often holds one item while the hub is lightly loaded. Read through `unnest`,
a one-element array makes PostgreSQL's planner judge a fresh plan cheaper than its cached
generic one, so such a statement may be planned again at every call (the ack's was: 0.3 ms
of planning for 0.04 ms of work, docs/performance.md). The one-item form reads the same
columns from plain parameters: the statement around them is the same text, so it keeps the
same rules, and its plan is kept."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from smsnodes_hub.auth.accounts import Executor


@dataclass(frozen=True, slots=True)
class Rows:
    """A statement's input rows, as `alias(name, ..., ordinality)`: each column is
    (parameter number, SQL type, name); `ordinality` numbers the rows from 1."""

    alias: str
    columns: tuple[tuple[int, str, str], ...]
    ordinality: str = "n"

    def sql(self, *, one: bool) -> str:
        names = ", ".join([name for _p, _t, name in self.columns] + [self.ordinality])
        if one:
            values = ", ".join(f"${p}::{t}" for p, t, _name in self.columns)
            return f"(SELECT {values}, 1::bigint) AS {self.alias}({names})"
        arrays = ", ".join(f"${p}::{t}[]" for p, t, _name in self.columns)
        return f"unnest({arrays}) WITH ORDINALITY AS {self.alias}({names})"


class SetStatement:
    """A statement written once, with a `{name}` in place of each of its `inputs`; `many`
    and `one` are its two forms, `fetch` runs the one that fits."""

    __slots__ = ("_first", "_rowwise", "many", "one")

    def __init__(self, template: str, **inputs: Rows) -> None:
        many = one = template
        for name, rows in inputs.items():
            marker = "{" + name + "}"
            if marker not in template:
                raise ValueError(f"the statement has no {marker}")
            many = many.replace(marker, rows.sql(one=False))
            one = one.replace(marker, rows.sql(one=True))
        self.many = many
        self.one = one
        # Arguments that are a column of rows: an array for `many`, its element for `one`;
        # the first of them says how many items there are.
        self._rowwise = frozenset(p - 1 for rows in inputs.values()
                                  for p, _t, _name in rows.columns)
        self._first = min(self._rowwise)

    async def fetch(self, db: Executor, *args: Any) -> list[asyncpg.Record]:
        """Run over the items in `args`, given as the set-based form takes them (a list per
        column of the rows): the one-item form when they are one."""
        if len(args[self._first]) != 1:
            return await db.fetch(self.many, *args)
        return await db.fetch(self.one, *[arg[0] if k in self._rowwise else arg
                                          for k, arg in enumerate(args)])
