"""The cold-start baseline: a handler that imports only Powertools' HTTP resolver, pydantic and psycopg.

`bench.tickets` times importing this module in fresh processes beside each real handler module
(functions/*/app.py). The resolver is built as the real ones are (validation on), so the baseline pays
for the same Powertools machinery and the difference is what our own code adds.
"""

from __future__ import annotations

from typing import Any

import psycopg  # noqa: F401  (imported for its cost, as the real handlers' database layer does)
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from pydantic import BaseModel

app = APIGatewayHttpResolver(enable_validation=True)


class Pong(BaseModel):
    ok: bool = True


@app.get("/ping")
def ping() -> Pong:
    return Pong()


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return app.resolve(event, context)
