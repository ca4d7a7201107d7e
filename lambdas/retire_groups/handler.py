"""Step: after a shift, delete the retained groups beyond `retention.keepGroups` (never the seed group)."""

from __future__ import annotations

from functools import cache

from aws_lambda_powertools.utilities.typing import LambdaContext

from retire_groups import logic
from retire_groups.models import RetireGroupsInput, RetireGroupsOutput
from shared.aws.groups import BlueGreenGroups
from shared.config import load_deploy_config
from shared.handler import step_handler
from shared.observability import logger

CONFIG = load_deploy_config()


groups = cache(BlueGreenGroups)


@step_handler(RetireGroupsInput)
def lambda_handler(request: RetireGroupsInput, context: LambdaContext) -> RetireGroupsOutput:
    output = logic.run(request, CONFIG, groups=groups())
    logger.info(
        "groups retired" if not request.dry_run else "groups that would be retired",
        extra={"deleted": output.deleted, "kept": output.kept, "skipped": [s.group for s in output.skipped]},
    )
    return output
