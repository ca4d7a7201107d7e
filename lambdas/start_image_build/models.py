"""Input, output and environment of the start_image_build step (check_image_build reads the output back)."""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from validate_request.models import NormalisedRequest

Pipeline = Literal["app", "base"]
AMI_ID_PATTERN = r"^ami-[0-9a-f]{8,17}$"
# ImagePipelineArn as botocore's imagebuilder model spells it.
PIPELINE_ARN_PATTERN = r"^arn:aws[^:]*:imagebuilder:[^:]+:(?:[0-9]{12}|aws):image-pipeline/[a-z0-9-_]+$"


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


class StepRequest(NormalisedRequest):
    """validate_request's `request`, passed back in by the state machine: no field added, none dropped."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class StartImageBuildInput(_Model):
    model_config = ConfigDict(extra="forbid", strict=True)

    execution_id: str = Field(min_length=1, max_length=2048)
    dry_run: bool = False
    request: StepRequest
    pipeline: Pipeline
    base_ami_id: str | None = Field(default=None, pattern=AMI_ID_PATTERN)


class StartImageBuildOutput(_Model):
    model_config = ConfigDict(extra="forbid", strict=True)

    pipeline: Pipeline
    image_build_version_arn: str | None  # None in a dry run
    commit: str | None  # the commit the app image bakes (None for the base image)
    client_token: str
    dry_run: bool
    # When this step started the build (epoch seconds): check_image_build bounds the bake from it.
    started_at: int | None = None


class StartImageBuildEnvironment(BaseModel):
    """What the stack sets on the start_image_build function (validated once, at cold start)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    build_source_parameter: str = Field(alias="BUILD_SOURCE_PARAMETER", min_length=1, max_length=2048)
    base_pipeline_arn: str = Field(alias="BASE_PIPELINE_ARN", pattern=PIPELINE_ARN_PATTERN)
    app_pipeline_arn: str = Field(alias="APP_PIPELINE_ARN", pattern=PIPELINE_ARN_PATTERN)
    # Lambda sets both; AWS_DEFAULT_REGION lets local runs (the rehearsal) work with either.
    aws_region: str = Field(
        alias="AWS_REGION", validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION"), min_length=1
    )
