"""Input and output of the retire_groups step."""

from __future__ import annotations

from shared.config import Target
from shared.models import StepInput, StepModel


class RetireGroupsInput(StepInput):
    target: Target


class SkippedGroup(StepModel):
    group: str
    reason: str


class RetireGroupsOutput(StepModel):
    deleted: list[str]  # in a dry run: the groups that would be deleted
    kept: list[str]  # the live group, then the retained groups kept for rollback, newest first
    skipped: list[SkippedGroup]  # groups left alone that retention alone would not keep, and why
