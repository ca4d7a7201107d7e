"""Input and output of the check_refresh step."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from shared.config import Target

Verdict = Literal["InProgress", "Healthy", "Failed"]


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


class CheckRefreshInput(_Model):
    model_config = ConfigDict(extra="forbid", strict=True)

    execution_id: str = Field(min_length=1)
    dry_run: bool = False  # accepted like on every step; checking changes nothing anyway
    target: Target
    instance_refresh_id: str = Field(min_length=1, max_length=255)
    launch_template_version: int = Field(ge=1)


class CheckRefreshOutput(_Model):
    verdict: Verdict
    status: str
    percentage_complete: int
    reason: str
    instances_to_update: int | None
    # Seconds since the refresh started: the state machine's time bound on waiting for it.
    elapsed_seconds: int = 0
