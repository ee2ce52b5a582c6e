"""The only code that talks to psycopg."""

from support.db.connection import (
    Prelude,
    get_connection,
    pipelined,
    prelude,
    read_snapshot,
    reset_connection,
    tenant_transaction,
    write_one,
)

__all__ = [
    "Prelude",
    "get_connection",
    "pipelined",
    "prelude",
    "read_snapshot",
    "reset_connection",
    "tenant_transaction",
    "write_one",
]
