"""The only code that talks to psycopg."""

from support.db.connection import get_connection, read_snapshot, reset_connection, small_write, tenant_transaction

__all__ = ["get_connection", "read_snapshot", "reset_connection", "small_write", "tenant_transaction"]
