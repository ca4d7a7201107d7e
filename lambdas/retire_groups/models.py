"""Input and output of the retire_groups step."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from shared.config import Target


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


class RetireGroupsInput(_Model):
    model_config = ConfigDict(extra="forbid", strict=True)

    execution_id: str = Field(min_length=1)
    dry_run: bool = False
    target: Target


class SkippedGroup(_Model):
    group: str
    reason: str


class RetireGroupsOutput(_Model):
    deleted: list[str]  # in a dry run: the groups that would be deleted
    kept: list[str]  # the live group, then the retained groups kept for rollback, newest first
    skipped: list[SkippedGroup]  # groups left alone that retention alone would not keep, and why
