"""Input and output of the rollback step."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from shared.config import Target


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


class RollbackInput(_Model):
    model_config = ConfigDict(extra="forbid", strict=True)

    execution_id: str = Field(min_length=1)
    dry_run: bool = False
    target: Target
    instance_refresh_id: str | None = Field(default=None, min_length=1, max_length=255)
    previous_version: int = Field(ge=1)
    new_version: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _versions_differ(self) -> RollbackInput:
        if self.new_version is not None and self.new_version == self.previous_version:
            raise ValueError(f"previousVersion and newVersion are both {self.new_version}: nothing to roll back to")
        return self


class RollbackOutput(_Model):
    auto_scaling_group_name: str
    actions: list[str]
    launch_template_default_version: int
    instance_refresh_id: str | None
    needs_wait: bool
