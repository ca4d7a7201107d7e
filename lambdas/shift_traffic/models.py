"""Input and output of the shift_traffic step."""

from __future__ import annotations

from typing import Literal

from create_green_group.models import GreenGroup

from shared.config import Target
from shared.models import StepInput, StepModel


class ShiftTrafficInput(StepInput):
    target: Target
    green: GreenGroup


class ShiftTrafficOutput(StepModel):
    done: bool  # false: blue's target groups are being detached (draining); call again after a wait
    blue_group_name: str
    green_group_name: str
    old_group: Literal["scale-to-zero", "keep-running"]
    detached: list[str]  # target group ARNs this call detached from blue (in a dry run: would detach)
