"""Input and output of the check_green_group step."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from create_green_group.models import GreenGroup
from pydantic import Field

from shared.config import Target
from shared.models import StepInput, StepModel

# InProgress and Soaking: look again later. Healthy: shift traffic. Alarm, Failed, TimedOut: discard green.
Verdict = Literal["InProgress", "Soaking", "Healthy", "Alarm", "Failed", "TimedOut"]


class CheckGreenGroupInput(StepInput):
    # dryRun is accepted like on every step; checking changes nothing anyway.
    target: Target
    green: GreenGroup
    # The previous check's `healthySince`: when green was first seen healthy (the soak counts from it).
    healthy_since: datetime | None = Field(default=None, strict=False)


class CheckGreenGroupOutput(StepModel):
    verdict: Verdict
    reason: str
    healthy_since: datetime | None  # null while green is not healthy
    elapsed_seconds: int  # since green's createdAt: the bound the health timeout applies to
    desired: int
    in_service: int  # instances InService and Healthy in the group
    healthy_targets: int  # InService instances healthy in every target group of green
