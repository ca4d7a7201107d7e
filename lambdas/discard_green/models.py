"""Input and output of the discard_green step."""

from __future__ import annotations

from datetime import datetime

from create_green_group.models import GreenGroup
from pydantic import BaseModel, ConfigDict, Field

from shared.config import Target
from shared.models import StepInput, StepModel


class StepError(BaseModel):
    """What a Step Functions Catch puts in its ResultPath: {"Error": ..., "Cause": ...} (for the logs only).
    Lenient on purpose: the failure path must not fail on the shape of the failure it cleans up after."""

    model_config = ConfigDict(populate_by_name=True, frozen=True, extra="ignore")

    error: str = Field(alias="Error")
    cause: str | None = Field(default=None, alias="Cause")


class DiscardGreenInput(StepInput):
    target: Target
    green: GreenGroup | None = None  # null when create_green_group itself failed
    previous_version: int | None = Field(default=None, ge=1)  # the launch template default before publish
    new_version: int | None = Field(default=None, ge=1)  # the version publish made default
    error: StepError | None = None
    # Set by this step's previous call when it had to put blue back (a failed shift): since then green keeps
    # serving until blue is healthy again in every target group, for at most blueGreen.healthTimeoutMinutes.
    restoring_since: datetime | None = Field(default=None, strict=False)


class DiscardGreenOutput(StepModel):
    green_deleted: bool  # a green group this execution created was deleted (or is being deleted)
    green_retained: bool  # a reused retained group was taken out of the target groups and retained again
    blue_restored: bool  # blue was attached back / scaled back up / tagged live again
    default_version: int | None  # the launch template default after this step; null when no version was given
    # False while a restored blue is not serving yet: the state machine waits and calls again; green still serves.
    done: bool = True
    restoring_since: datetime | None = None
    reason: str = ""
