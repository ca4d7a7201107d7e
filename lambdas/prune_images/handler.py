"""prune_images: after every stage, deregister old AMIs of this application (and their snapshots) that nothing uses."""

from __future__ import annotations

from functools import cache

from aws_lambda_powertools.utilities.typing import LambdaContext

from prune_images.logic import prune_images
from prune_images.models import PruneImagesInput
from shared.aws.images import Images
from shared.aws.references import FleetReferences
from shared.config import load_deploy_config
from shared.observability import CORRELATION_ID_PATH, logger, metrics
from shared.parsing import parse_step_input

CONFIG = load_deploy_config()


@cache
def _images() -> Images:
    return Images()


@cache
def _fleet() -> FleetReferences:
    return FleetReferences()


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH)
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    payload = parse_step_input(event, PruneImagesInput)
    logger.info(
        "pruning images",
        extra={
            "dryRun": payload.dry_run,
            "protectAmiIds": sorted(payload.protected()),
            "application": CONFIG.application,
            "progress": payload.progress.model_dump(by_alias=True) if payload.progress else None,
        },
    )
    seconds_left = context.get_remaining_time_in_millis() / 1000
    output = prune_images(payload, CONFIG, _images(), _fleet(), seconds_left=seconds_left)
    return output.model_dump(by_alias=True, mode="json")
