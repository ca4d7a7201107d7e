"""Start the Image Builder build(s) that bake this deployment's image.

The base image comes from the base pipeline (StartImagePipelineExecution): it has no per-run input.

The app image is baked from a recipe made for that one bake (CreateImageRecipe, then CreateImage): an
image pipeline takes no per-run parameters, and a shared slot (an SSM parameter the build reads) can be
overwritten by another execution between the start and the build reading it. A recipe version is
immutable, so the commit, branch, repository and clone URL it holds as component parameters are exactly
what the build checks out and what app-test verifies (imagebuilder/components/app-install.yml, app-test.yml).

The recipe's parent is a base AMI chosen here, never `x.x.x`: the one the base bake of this execution just
made, else the newest available base AMI of this application by build time (CreationDate). With none
(a fresh account) the step raises `BaseImageMissing` and the state machine bakes the base first.

rebuild-base re-bakes, on the new base, the commit every requested target runs today (read from the AMI
of its default launch template version): one bake per distinct commit, and each target later gets the
image of its own commit (publish_launch_template_version), so a commit reaches a stage only if it ran there.

Idempotent (safety rule 6): recipe names and client tokens derive from the execution and the commit, so
a retried start gets the recipes and builds the first attempt made, never a second set.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Protocol

from aws_lambda_powertools.metrics import MetricUnit

from shared import clock, tags
from shared.aws.imagebuilder import MAX_CLIENT_TOKEN_LENGTH
from shared.aws.images import ImageRecord, newest_first
from shared.config import DeployConfig, Source, Target
from shared.errors import BaseImageMissing, InvalidInput
from shared.observability import logger, metrics
from shared.recipes import RECIPE_DIGEST_LENGTH
from start_image_build.models import (
    FULL_COMMIT_PATTERN,
    AppRecipe,
    Bake,
    CommitsFrom,
    Pipeline,
    RecipeComponent,
    StartImageBuildEnvironment,
    StartImageBuildInput,
    StartImageBuildOutput,
    StepRequest,
)

# Which pipelines each action may start: "rebuild-base" bakes the base, then the app on it; "deploy" bakes
# the app, and the base first when none exists yet (a fresh account).
_PIPELINES_BY_ACTION: dict[str, tuple[Pipeline, ...]] = {"deploy": ("base", "app"), "rebuild-base": ("base", "app")}


class PipelineStarter(Protocol):
    def start_pipeline(self, pipeline_arn: str, client_token: str) -> str: ...
    def create_recipe(self, request: Mapping[str, Any], arn: str) -> str: ...
    def create_image(self, request: Mapping[str, Any]) -> str: ...


class TemplateReader(Protocol):
    def default_version_image_id(self, launch_template_id: str) -> str | None: ...


class ImageReader(Protocol):
    def get_own_image(self, image_id: str) -> ImageRecord | None: ...
    def list_application_images(self, application: str) -> list[ImageRecord]: ...


def client_token(execution_id: str, pipeline: str) -> str:
    """Deterministic per (execution, what is created), within Image Builder's 64-character client tokens."""
    digest = hashlib.sha256(f"{execution_id}|{pipeline}".encode()).hexdigest()
    prefix = pipeline.split("|", 1)[0]
    return f"{prefix}-{digest}"[:MAX_CLIENT_TOKEN_LENGTH]


def recipe_name(recipe: AppRecipe, execution_id: str, commit: str) -> str:
    """<app>-app-<digest>: within CreateImageRecipe's 128-character names, the shape the stack's IAM allows."""
    digest = hashlib.sha256(f"{execution_id}|{commit}".encode()).hexdigest()[:RECIPE_DIGEST_LENGTH]
    return f"{recipe.name}-{digest}"


def clone_url(source: Source, region: str) -> str:
    if source.type == "codecommit":
        return f"https://git-codecommit.{region}.amazonaws.com/v1/repos/{source.repository}"
    return f"https://github.com/{source.repository}.git"


def check_pipeline(request: StartImageBuildInput) -> None:
    """The pipeline must be one the request's action bakes; only the app image is baked on a given base AMI."""
    action = request.request.action
    allowed = _PIPELINES_BY_ACTION.get(action, ())
    if request.pipeline not in allowed:
        bakes = f"bakes only {' and '.join(allowed)}" if allowed else "bakes no image"
        raise InvalidInput(f'pipeline: action "{action}" {bakes}, not "{request.pipeline}"')
    if request.pipeline == "base" and request.base_ami_id is not None:
        raise InvalidInput("baseAmiId: only the app image is baked on a base AMI; the base pipeline takes none")


def requested_targets(request: StepRequest, config: DeployConfig) -> list[Target]:
    """Every target of the requested stages (configured order); all stages when none are named."""
    names = request.stages or [s.name for s in config.stages]
    targets: list[Target] = []
    for index, name in enumerate(names):
        stage = config.stage(name)
        if stage is None:
            raise InvalidInput(f"request.stages[{index}]: {name!r} is not a configured stage")
        targets.extend(stage.targets)
    return targets


def deployed_commit(target: Target, templates: TemplateReader, images: ImageReader) -> str:
    """The commit the target runs: its default launch template version's AMI, tag COMMIT."""
    return _deployed(target, templates, images)[0]


def _deployed(target: Target, templates: TemplateReader, images: ImageReader) -> tuple[str, ImageRecord]:
    """The commit the target runs and the image it runs it from (its default launch template version's AMI)."""
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
    if not re.fullmatch(FULL_COMMIT_PATTERN, commit):
        # The tag becomes the Commit parameter app-install pastes into its scripts: only a full SHA is safe and
        # names one commit (imagebuilder/components/app-install.yml refuses anything else, after an instance ran).
        raise InvalidInput(
            f"rebuild-base: {where} uses {ami_id}, whose {tags.COMMIT} tag {commit!r} is not a full commit SHA "
            "(40 lower-case hex characters)"
        )
    return commit, image


def running_bases(
    request: StepRequest, config: DeployConfig, templates: TemplateReader, images: ImageReader
) -> list[str]:
    """rebuild-base, before the base bake: every requested target's commit can be re-baked (else it fails now,
    not after a bake of half an hour), and the base images the targets' images were built on (BASE_IMAGE tag):
    a new base is "unchanged" only if it equals every one of them (check_image_build)."""
    bases = set()
    for target in requested_targets(request, config):
        _, image = _deployed(target, templates, images)
        bases.add(image.tags.get(tags.BASE_IMAGE) or f"unknown base of {image.image_id}")
    return sorted(bases)


def commits_to_bake(
    request: StepRequest, config: DeployConfig, templates: TemplateReader, images: ImageReader
) -> tuple[list[str], CommitsFrom]:
    """The commits to bake, in first-seen order, and where they came from ("request" or "targets")."""
    if request.commit is not None:
        return [request.commit], "request"
    if request.action != "rebuild-base":
        raise InvalidInput(f'request.commit: required to bake the app image for "{request.action}"')
    by_target = {
        t.auto_scaling_group_name: deployed_commit(t, templates, images) for t in requested_targets(request, config)
    }
    commits = list(dict.fromkeys(by_target.values()))
    logger.info("rebuild-base: re-baking the commit each target runs", extra={"commits": commits, "targets": by_target})
    return commits, "targets"


def newest_base(config: DeployConfig, images: ImageReader) -> str | None:
    """The newest available base AMI of this application by build time (CreationDate), or None."""
    bases = [
        image
        for image in images.list_application_images(config.application)
        if image.pipeline == "base" and image.state == "available"
    ]
    return newest_first(bases)[0].image_id if bases else None


def component_parameters(
    component_fill: str | None, static: Mapping[str, str], source: dict[str, str]
) -> list[dict[str, Any]]:
    values = dict(static)
    if component_fill == "install":
        values.update(source)
    elif component_fill == "test":
        values["Commit"] = source["Commit"]
    return [{"name": name, "value": [value]} for name, value in values.items()]


def component_configuration(component: RecipeComponent, source: dict[str, str]) -> dict[str, Any]:
    """One entry of CreateImageRecipe's components; `parameters` only when there are some: the API takes a list
    of at least one (EC2 Image Builder API Reference, ComponentConfiguration,
    https://docs.aws.amazon.com/imagebuilder/latest/APIReference/API_ComponentConfiguration.html)."""
    parameters = component_parameters(component.fill, component.parameters, source)
    return {"componentArn": component.arn, "parameters": parameters} if parameters else {"componentArn": component.arn}


def bake_source(request: StepRequest, commit: str, source: Source, region: str) -> dict[str, str]:
    """What app-install.yml checks out: its component parameters (values must not be empty)."""
    values = {
        "Commit": commit,
        "Branch": request.branch or source.branch,
        "Repository": source.repository,
        "CloneUrl": clone_url(source, region),
        "SourceType": source.type,
    }
    token = source.token_secret_arn
    if token:
        values["TokenSecretArn"] = token
    return values


def arn_prefix(infrastructure_arn: str) -> str:
    """arn:<partition>:imagebuilder:<region>:<account> of the stack's own Image Builder resources."""
    return ":".join(infrastructure_arn.split(":")[:5])


def start_app_bake(
    request: StartImageBuildInput,
    config: DeployConfig,
    env: StartImageBuildEnvironment,
    imagebuilder: PipelineStarter,
    commit: str,
    base_ami_id: str,
) -> Bake:
    source = config.source
    assert source is not None  # checked by run()
    recipe = env.app_recipe
    name = recipe_name(recipe, request.execution_id, commit)
    values = bake_source(request.request, commit, source, env.aws_region)
    resource_tags = {
        tags.APPLICATION: config.application,
        tags.PIPELINE: "app",
        tags.COMMIT: commit,
        tags.EXECUTION: request.execution_id[-256:],
    }
    recipe_request = {
        "name": name,
        "semanticVersion": recipe.version,
        "description": f"{config.application} app image of commit {commit}, on {base_ami_id}",
        "parentImage": base_ami_id,
        "components": [component_configuration(c, values) for c in recipe.components],
        # Keep the SSM agent: the test instance and Session Manager need it (as the base recipe does).
        "additionalInstanceConfiguration": {"systemsManagerAgent": {"uninstallAfterBuild": False}},
        "tags": resource_tags,
        "clientToken": client_token(request.execution_id, f"recipe|{commit}"),
    }
    recipe_arn = imagebuilder.create_recipe(
        recipe_request, f"{arn_prefix(env.infrastructure_arn)}:image-recipe/{name}/{recipe.version}"
    )
    build_arn = imagebuilder.create_image(
        {
            "imageRecipeArn": recipe_arn,
            "infrastructureConfigurationArn": env.infrastructure_arn,
            "distributionConfigurationArn": env.app_distribution_arn,
            "imageTestsConfiguration": {"imageTestsEnabled": True, "timeoutMinutes": env.image_tests_timeout_minutes},
            "enhancedImageMetadataEnabled": True,
            "tags": resource_tags,
            "clientToken": client_token(request.execution_id, f"app|{commit}"),
        }
    )
    logger.info(
        "app bake started (a retry with the same client tokens returns this same recipe and build)",
        extra={"commit": commit, "recipeArn": recipe_arn, "imageBuildVersionArn": build_arn, "baseAmiId": base_ami_id},
    )
    return Bake(commit=commit, image_build_version_arn=build_arn, recipe_arn=recipe_arn, base_ami_id=base_ami_id)


def run(
    request: StartImageBuildInput,
    config: DeployConfig,
    env: StartImageBuildEnvironment,
    *,
    imagebuilder: PipelineStarter,
    templates: TemplateReader,
    images: ImageReader,
    now: Callable[[], datetime] | None = None,  # shared.clock.now, looked up at call time
) -> StartImageBuildOutput:
    check_pipeline(request)
    # Either flag makes it a dry run: when in doubt, change nothing.
    dry_run = request.dry_run or request.request.dry_run
    started_at = int((now or clock.now)().timestamp())

    if request.pipeline == "base":
        token = client_token(request.execution_id, "base")
        bases = (
            running_bases(request.request, config, templates, images)
            if request.request.action == "rebuild-base" and config.source is not None
            else []
        )
        if dry_run:
            logger.info("dry run: would start the base pipeline", extra={"pipelineArn": env.base_pipeline_arn})
            arn = None
        else:
            arn = imagebuilder.start_pipeline(env.base_pipeline_arn, token)
            metrics.add_metric(name="ImageBuildsStarted", unit=MetricUnit.Count, value=1)
            logger.info(
                "base pipeline started (a retry with the same client token returns this same build)",
                extra={"pipelineArn": env.base_pipeline_arn, "imageBuildVersionArn": arn},
            )
        return StartImageBuildOutput(
            pipeline="base",
            image_build_version_arn=arn,
            commit=None,
            client_token=token,
            dry_run=dry_run,
            started_at=None if dry_run else started_at,
            bakes=[Bake(commit=None, image_build_version_arn=arn)],
            running_bases=bases,
        )

    if config.source is None:
        raise InvalidInput("the app image builds from the configured source, and no source is configured")
    commits, commits_from = commits_to_bake(request.request, config, templates, images)
    base_ami_id = request.base_ami_id or newest_base(config, images)
    if base_ami_id is None:
        raise BaseImageMissing(
            f"no available base image of {config.application} exists yet: the base image is baked first"
        )
    token = client_token(request.execution_id, f"app|{commits[0]}")
    if dry_run:
        logger.info("dry run: would bake the app image", extra={"commits": commits, "baseAmiId": base_ami_id})
        bakes = [Bake(commit=c, image_build_version_arn=None, base_ami_id=base_ami_id) for c in commits]
    else:
        bakes = [start_app_bake(request, config, env, imagebuilder, c, base_ami_id) for c in commits]
        metrics.add_metric(name="ImageBuildsStarted", unit=MetricUnit.Count, value=len(bakes))
    return StartImageBuildOutput(
        pipeline="app",
        image_build_version_arn=bakes[0].image_build_version_arn,
        commit=commits[0],
        client_token=token,
        dry_run=dry_run,
        started_at=None if dry_run else started_at,
        bakes=bakes,
        commits_from=commits_from,
    )
