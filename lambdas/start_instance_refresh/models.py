"""Input and output of the start_instance_refresh step."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from shared.config import Target


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


class StartInstanceRefreshInput(_Model):
    model_config = ConfigDict(extra="forbid", strict=True)

    execution_id: str = Field(min_length=1)
    dry_run: bool = False
    target: Target
    launch_template_version: int = Field(ge=1)


class StartInstanceRefreshOutput(_Model):
    auto_scaling_group_name: str
    instance_refresh_id: str | None
    adopted: bool
    preferences: dict[str, Any]
