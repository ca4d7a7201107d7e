"""Input and output of the rollback step."""

from __future__ import annotations

from pydantic import Field, model_validator

from shared.config import Target
from shared.models import StepInput, StepModel


class RollbackInput(StepInput):
    target: Target
    instance_refresh_id: str | None = Field(default=None, min_length=1, max_length=255)
    previous_version: int = Field(ge=1)
    new_version: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _versions_differ(self) -> RollbackInput:
        if self.new_version is not None and self.new_version == self.previous_version:
            raise ValueError(f"previousVersion and newVersion are both {self.new_version}: nothing to roll back to")
        return self


class RollbackOutput(StepModel):
    auto_scaling_group_name: str
    actions: list[str]
    launch_template_default_version: int
    instance_refresh_id: str | None
    needs_wait: bool
