"""Input, output and environment of the check_image_build step."""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field
from start_image_build.models import AMI_ID_PATTERN, Pipeline, StartImageBuildOutput, StepRequest

from shared.models import StepInput, StepModel

BuildStatus = Literal["BUILDING", "AVAILABLE", "FAILED", "CANCELLED"]


class CheckImageBuildInput(StepInput):
    build: StartImageBuildOutput
    request: StepRequest
    base_ami_id: str | None = Field(default=None, pattern=AMI_ID_PATTERN)
    # The bake has outlived its bound or a sibling bake failed: cancel every build still running.
    cancel: bool = False


class BakedImage(StepModel):
    commit: str | None
    ami_id: str


class CheckImageBuildOutput(StepModel):
    status: BuildStatus
    ami_id: str | None  # the AMI of this region, when AVAILABLE
    image_build_version_arn: str | None
    reason: str
    pipeline: Pipeline
    # A base build whose installed packages equal the previous base image's: nothing to roll out.
    base_unchanged: bool = False
    # Seconds since start_image_build started the build: the state machine ends the bake at build.timeoutMinutes.
    elapsed_seconds: int = 0
    # While BUILDING: the build to wait on next (the first one not finished).
    pending_build_arn: str | None = None
    # rebuild-base (commits from the targets): this region's AMI of every commit baked; each target takes its own.
    images: list[BakedImage] | None = None
    cancelled: list[str] = Field(default_factory=list)  # builds this call cancelled


class CheckImageBuildEnvironment(BaseModel):
    """What the check_image_build function needs besides DEPLOY_CONFIG (Lambda sets AWS_REGION)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    # Lambda sets both; AWS_DEFAULT_REGION lets local runs (the rehearsal) work with either.
    aws_region: str = Field(
        alias="AWS_REGION", validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION"), min_length=1
    )
