"""Input and output of the start_instance_refresh step."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from shared.config import Target
from shared.models import StepInput, StepModel


class StartInstanceRefreshInput(StepInput):
    target: Target
    launch_template_version: int = Field(ge=1)


class StartInstanceRefreshOutput(StepModel):
    auto_scaling_group_name: str
    instance_refresh_id: str | None
    adopted: bool
    preferences: dict[str, Any]
