"""Input and output of the check_refresh step."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shared.config import Target
from shared.models import StepInput, StepModel

Verdict = Literal["InProgress", "Healthy", "Failed"]


class CheckRefreshInput(StepInput):
    # dryRun is accepted like on every step; checking changes nothing anyway.
    target: Target
    instance_refresh_id: str = Field(min_length=1, max_length=255)
    launch_template_version: int = Field(ge=1)


class CheckRefreshOutput(StepModel):
    verdict: Verdict
    status: str
    percentage_complete: int
    reason: str
    instances_to_update: int | None
    # Seconds since the refresh started: the state machine's time bound on waiting for it.
    elapsed_seconds: int = 0
