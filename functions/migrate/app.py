"""The migrate function: CloudFormation's custom resource Custom::Migrate, run on every deploy.

Applies sql/ as the schema owner and gives the login roles their secrets' passwords (support.migrate), and
always answers CloudFormation, FAILED with the reason when the migration breaks (support.cloudformation).
The build packages sql/ beside this file (functions/migrate/sql is a link to the repository's sql/).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from support.cloudformation import CustomResourceRequest, Outcome, answer_custom_resource
from support.migrate import MigrateSettings, migrate_database
from support.observability import logger

MIGRATIONS = Path(__file__).resolve().parent / "sql"


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, str]:
    # Read per request, not at import: a missing variable is then a FAILED answer, not a function that
    # cannot start (CloudFormation would wait an hour for an answer).
    def work(request: CustomResourceRequest) -> Outcome:
        settings = MigrateSettings.model_validate({"MIGRATIONS_DIR": str(MIGRATIONS), **os.environ})
        return migrate_database(request, settings)

    return {"Status": answer_custom_resource(event, context, work)}
