"""Small builders for the SQL the services compose from fixed column names (values are always bound)."""

from __future__ import annotations

from collections.abc import Iterable

from psycopg import sql


def equals_placeholders(columns: Iterable[str]) -> list[sql.Composable]:
    """`column = %(column)s` for each column: SET lists and equality filters with named parameters."""
    return [sql.SQL("{} = {}").format(sql.Identifier(column), sql.Placeholder(column)) for column in columns]
