"""Step: after a shift, delete the retained groups beyond `retention.keepGroups` (never the seed group)."""

from __future__ import annotations

from functools import cache

from aws_lambda_powertools.utilities.typing import LambdaContext

from retire_groups import logic
from retire_groups.models import RetireGroupsInput
from shared.aws.groups import BlueGreenGroups
from shared.config import load_deploy_config
from shared.observability import CORRELATION_ID_PATH, logger, metrics
from shared.parsing import parse_step_input

CONFIG = load_deploy_config()


@cache
def groups() -> BlueGreenGroups:
    return BlueGreenGroups()


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH)
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    request = parse_step_input(event, RetireGroupsInput)
    output = logic.run(request, CONFIG, groups())
    logger.info(
        "groups retired" if not request.dry_run else "groups that would be retired",
        extra={"deleted": output.deleted, "kept": output.kept, "skipped": [s.group for s in output.skipped]},
    )
    return output.model_dump(by_alias=True, mode="json")
