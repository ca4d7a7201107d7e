"""prune_images: after every stage, deregister old AMIs of this application (and their snapshots) that nothing uses."""

from __future__ import annotations

from functools import cache

from aws_lambda_powertools.utilities.typing import LambdaContext

from prune_images.logic import prune_images
from prune_images.models import PruneImagesInput, PruneImagesOutput
from shared.aws.images import Images
from shared.aws.references import FleetReferences
from shared.config import load_deploy_config
from shared.handler import step_handler
from shared.observability import logger

CONFIG = load_deploy_config()


_images = cache(Images)
_fleet = cache(FleetReferences)


@step_handler(PruneImagesInput)
def lambda_handler(payload: PruneImagesInput, context: LambdaContext) -> PruneImagesOutput:
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
    return prune_images(payload, CONFIG, images=_images(), fleet=_fleet(), seconds_left=seconds_left)
