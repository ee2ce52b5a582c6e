"""The only code that talks to psycopg."""

from support.db.connection import (
    get_connection,
    pipelined,
    read_snapshot,
    reset_connection,
    tenant_transaction,
    write_one,
)

__all__ = ["get_connection", "pipelined", "read_snapshot", "reset_connection", "tenant_transaction", "write_one"]
