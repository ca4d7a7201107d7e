"""Start the Image Builder pipeline that bakes this deployment's image.

An image pipeline takes no per-run parameters: for the app image, the commit to bake is written to the
SSM parameter the app-install component reads (imagebuilder/components/app-install.yml), right before
the pipeline starts. The rebuild-base chain has no commit in its request: it re-bakes the commit that
runs now, read from the AMI of the first target's default launch template version.

Idempotent (safety rule 6): the client token is derived from the execution and the pipeline, so a
retried start gets the build the first attempt started, never a second one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from aws_lambda_powertools.metrics import MetricUnit
from start_image_build.models import (
    Pipeline,
    StartImageBuildEnvironment,
    StartImageBuildInput,
    StartImageBuildOutput,
    StepRequest,
)

from shared import clock, tags
from shared.aws.imagebuilder import MAX_CLIENT_TOKEN_LENGTH
from shared.aws.images import ImageRecord
from shared.config import DeployConfig, Source, Target
from shared.errors import InvalidInput
from shared.observability import logger, metrics

# Which pipelines each action may start: "rebuild-base" bakes the base, then the app on it.
_PIPELINES_BY_ACTION: dict[str, tuple[Pipeline, ...]] = {"deploy": ("app",), "rebuild-base": ("base", "app")}


class PipelineStarter(Protocol):
    def start_pipeline(self, pipeline_arn: str, client_token: str) -> str: ...


class ParameterWriter(Protocol):
    def put_string(self, name: str, value: str) -> int: ...


class TemplateReader(Protocol):
    def default_version_image_id(self, launch_template_id: str) -> str | None: ...


class ImageReader(Protocol):
    def get_own_image(self, image_id: str) -> ImageRecord | None: ...


def client_token(execution_id: str, pipeline: str) -> str:
    """Deterministic per (execution, pipeline), within StartImagePipelineExecution's 64 characters."""
    digest = hashlib.sha256(f"{execution_id}|{pipeline}".encode()).hexdigest()
    return f"{pipeline}-{digest}"[:MAX_CLIENT_TOKEN_LENGTH]


def clone_url(source: Source, region: str) -> str:
    if source.type == "codecommit":
        return f"https://git-codecommit.{region}.amazonaws.com/v1/repos/{source.repository}"
    return f"https://github.com/{source.repository}.git"


def check_pipeline(request: StartImageBuildInput) -> None:
    """The pipeline must be one the request's action bakes; only the app image is baked on a given base AMI."""
    action = request.request.action
    allowed = _PIPELINES_BY_ACTION.get(action, ())
    if request.pipeline not in allowed:
        bakes = f"bakes only {' then '.join(allowed)}" if allowed else "bakes no image"
        raise InvalidInput(f'pipeline: action "{action}" {bakes}, not "{request.pipeline}"')
    if request.pipeline == "base" and request.base_ami_id is not None:
        raise InvalidInput("baseAmiId: only the app image is baked on a base AMI; the base pipeline takes none")


def first_target(request: StepRequest, config: DeployConfig) -> Target:
    """The first target of the first requested stage (configured order); all stages when none are named."""
    names = request.stages or [s.name for s in config.stages]
    stage = config.stage(names[0])
    if stage is None:
        raise InvalidInput(f"request.stages[0]: {names[0]!r} is not a configured stage")
    return stage.targets[0]


def deployed_commit(request: StepRequest, config: DeployConfig, templates: TemplateReader, images: ImageReader) -> str:
    """The commit of the image the first target runs: its default launch template version's AMI, tag COMMIT."""
    target = first_target(request, config)
    where = f"{target.auto_scaling_group_name} (launch template {target.launch_template_id}, default version)"
    ami_id = templates.default_version_image_id(target.launch_template_id)
    if ami_id is None:
        raise InvalidInput(f"rebuild-base: cannot tell which commit is deployed: {where} names no AMI")
    image = images.get_own_image(ami_id)
    if image is None:
        raise InvalidInput(
            f"rebuild-base: cannot tell which commit is deployed: {where} uses {ami_id}, "
            "which is not an image this account owns"
        )
    commit = image.tags.get(tags.COMMIT)
    if not commit:
        raise InvalidInput(
            f"rebuild-base: cannot tell which commit is deployed: {where} uses {ami_id}, "
            f"which has no {tags.COMMIT} tag (deploy a commit once, then rebuild-base can re-bake it)"
        )
    logger.info(
        "rebuild-base: re-baking the deployed commit",
        extra={"commit": commit, "amiId": ami_id, "launchTemplateId": target.launch_template_id},
    )
    return commit


def build_source(request: StartImageBuildInput, commit: str, source: Source, region: str) -> dict[str, str | None]:
    """The JSON app-install.yml reads: commit, cloneUrl and sourceType drive the checkout."""
    return {
        "commit": commit,
        "branch": request.request.branch or source.branch,
        "repository": source.repository,
        "cloneUrl": clone_url(source, region),
        "sourceType": source.type,
        "executionId": request.execution_id,
        "baseAmiId": request.base_ami_id,
    }


def run(
    request: StartImageBuildInput,
    config: DeployConfig,
    env: StartImageBuildEnvironment,
    imagebuilder: PipelineStarter,
    parameters: ParameterWriter,
    templates: TemplateReader,
    images: ImageReader,
    *,
    now: Callable[[], datetime] | None = None,  # shared.clock.now, looked up at call time
) -> StartImageBuildOutput:
    check_pipeline(request)
    # Either flag makes it a dry run: when in doubt, change nothing.
    dry_run = request.dry_run or request.request.dry_run
    token = client_token(request.execution_id, request.pipeline)
    commit: str | None = None

    if request.pipeline == "app":
        source = config.source
        if source is None:
            raise InvalidInput("the app image builds from the configured source, and no source is configured")
        commit = request.request.commit
        if commit is None:
            if request.request.action != "rebuild-base":
                raise InvalidInput(f'request.commit: required to bake the app image for "{request.request.action}"')
            commit = deployed_commit(request.request, config, templates, images)
        payload = build_source(request, commit, source, env.aws_region)
        logger.info("build source", extra={"parameter": env.build_source_parameter, "source": payload})
        if not dry_run:
            version = parameters.put_string(
                env.build_source_parameter, json.dumps(payload, separators=(",", ":"), sort_keys=True)
            )
            logger.info("build source recorded", extra={"parameterVersion": version})

    pipeline_arn = env.app_pipeline_arn if request.pipeline == "app" else env.base_pipeline_arn
    if dry_run:
        logger.info(
            "dry run: would start the image pipeline", extra={"pipelineArn": pipeline_arn, "clientToken": token}
        )
        return StartImageBuildOutput(
            pipeline=request.pipeline, image_build_version_arn=None, commit=commit, client_token=token, dry_run=True
        )

    build_arn = imagebuilder.start_pipeline(pipeline_arn, token)
    metrics.add_metric(name="ImageBuildsStarted", unit=MetricUnit.Count, value=1)
    logger.info(
        "image pipeline started (a retry with the same client token returns this same build)",
        extra={"pipelineArn": pipeline_arn, "clientToken": token, "imageBuildVersionArn": build_arn, "commit": commit},
    )
    return StartImageBuildOutput(
        pipeline=request.pipeline,
        image_build_version_arn=build_arn,
        commit=commit,
        client_token=token,
        dry_run=False,
        started_at=int((now or clock.now)().timestamp()),
    )
