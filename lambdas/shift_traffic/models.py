"""Input and output of the shift_traffic step."""

from __future__ import annotations

from typing import Literal

from create_green_group.models import GreenGroup
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from shared.config import Target


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


class ShiftTrafficInput(_Model):
    model_config = ConfigDict(extra="forbid", strict=True)

    execution_id: str = Field(min_length=1)
    dry_run: bool = False
    target: Target
    green: GreenGroup


class ShiftTrafficOutput(_Model):
    done: bool  # false: blue's target groups are being detached (draining); call again after a wait
    blue_group_name: str
    green_group_name: str
    old_group: Literal["scale-to-zero", "keep-running"]
    detached: list[str]  # target group ARNs this call detached from blue (in a dry run: would detach)
