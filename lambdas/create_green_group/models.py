"""Input and output of the create_green_group step; its output (`GreenGroup`) is the `green` every later
blue-green step is given."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from shared.config import Target
from shared.models import Payload, StepInput


class CreateGreenGroupInput(StepInput):
    target: Target
    ami_id: str = Field(pattern=r"^ami-[0-9a-f]{8,17}$")
    # The version publish_launch_template_version just made: green launches exactly this number.
    launch_template_version: int = Field(ge=1)
    # The template's default before that publish: what a blue group on "$Default" has been launching.
    previous_version: int | None = Field(default=None, ge=1)


class GreenGroup(Payload):
    """The output of create_green_group, passed back in as `green` (so it is parsed as strictly as any input)."""

    blue_group_name: str = Field(min_length=1)
    green_group_name: str = Field(min_length=1)
    reused: bool  # a retained group that runs the AMI was brought back (rollback fast path)
    already_live: bool  # blue already runs the AMI: nothing was created, green is blue
    desired_capacity: int = Field(ge=0)
    target_group_arns: list[str]
    # When green was created (or reused): health timeout and failed launches count from here.
    created_at: datetime = Field(strict=False)
    dry_run: bool
    # What blue launched before this deployment (its version as a number, "$Default"/"$Latest" resolved as they
    # were before the publish) and that version's AMI: shift_traffic pins a retired seed to it, tags it with it.
    blue_launch_template_version: int | None = None
    blue_image_id: str | None = None
