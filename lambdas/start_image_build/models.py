"""Input, output and environment of the start_image_build step (check_image_build reads the output back)."""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, Json
from validate_request.models import NormalisedRequest

from shared.models import Payload, StepInput

Pipeline = Literal["app", "base"]
AMI_ID_PATTERN = r"^ami-[0-9a-f]{8,17}$"
# ImagePipelineArn as botocore's imagebuilder model spells it.
PIPELINE_ARN_PATTERN = r"^arn:aws[^:]*:imagebuilder:[^:]+:(?:[0-9]{12}|aws):image-pipeline/[a-z0-9-_]+$"
INFRASTRUCTURE_ARN_PATTERN = r"^arn:aws[^:]*:imagebuilder:[^:]+:[0-9]{12}:infrastructure-configuration/[a-z0-9-_]+$"
DISTRIBUTION_ARN_PATTERN = r"^arn:aws[^:]*:imagebuilder:[^:]+:[0-9]{12}:distribution-configuration/[a-z0-9-_]+$"


class StepRequest(NormalisedRequest):
    """validate_request's `request`, passed back in by the state machine: no field added, none dropped."""

    model_config = ConfigDict(extra="forbid", strict=True)


class StartImageBuildInput(StepInput):
    request: StepRequest
    pipeline: Pipeline
    base_ami_id: str | None = Field(default=None, pattern=AMI_ID_PATTERN)


CommitsFrom = Literal["request", "targets"]
FULL_COMMIT_PATTERN = r"^[0-9a-f]{40}$"


class Bake(Payload):
    """One image build this step started: for the app image, one per commit, each from its own recipe."""

    commit: str | None  # None for the base image
    image_build_version_arn: str | None  # None in a dry run
    recipe_arn: str | None = None  # the app recipe made for this bake (its component parameters hold the commit)
    base_ami_id: str | None = None  # the app recipe's parent: the base AMI this bake starts from


class StartImageBuildOutput(Payload):
    pipeline: Pipeline
    # The build the state machine waits on (the first unfinished one: check_image_build moves it on).
    image_build_version_arn: str | None  # None in a dry run
    commit: str | None  # the first bake's commit (None for the base image)
    client_token: str
    dry_run: bool
    # When this step started the build (epoch seconds): check_image_build bounds the bake from it.
    started_at: int | None = None
    bakes: list[Bake] = Field(default_factory=list)
    # "targets": rebuild-base re-bakes the commit each target runs; every target then gets its own commit's image.
    commits_from: CommitsFrom = "request"
    # rebuild-base's base bake: the base images the targets' images were built on (their BASE_IMAGE tags).
    running_bases: list[str] = Field(default_factory=list)


class RecipeComponent(BaseModel):
    """One component of the app recipe, as the stack wrote it (APP_RECIPE)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    arn: str = Field(min_length=1)
    parameters: dict[str, str] = {}
    # "install": gets the source of the bake (Commit, Branch, ...); "test": gets Commit; None: nothing added.
    fill: Literal["install", "test"] | None = None


class AppRecipe(BaseModel):
    """The app recipe every bake instantiates: name prefix, version, components (APP_RECIPE, set by the stack)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    version: str = Field(pattern=r"^[0-9]+\.[0-9]+\.[0-9]+$")
    components: tuple[RecipeComponent, ...] = Field(min_length=1)


class StartImageBuildEnvironment(BaseModel):
    """What the stack sets on the start_image_build function (validated once, at cold start)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    base_pipeline_arn: str = Field(alias="BASE_PIPELINE_ARN", pattern=PIPELINE_ARN_PATTERN)
    app_recipe: Json[AppRecipe] = Field(alias="APP_RECIPE")
    infrastructure_arn: str = Field(alias="INFRASTRUCTURE_ARN", pattern=INFRASTRUCTURE_ARN_PATTERN)
    app_distribution_arn: str = Field(alias="APP_DISTRIBUTION_ARN", pattern=DISTRIBUTION_ARN_PATTERN)
    image_tests_timeout_minutes: int = Field(alias="IMAGE_TESTS_TIMEOUT_MINUTES", ge=60, le=1440)
    # Lambda sets both; AWS_DEFAULT_REGION lets local runs (the rehearsal) work with either.
    aws_region: str = Field(
        alias="AWS_REGION", validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION"), min_length=1
    )
