"""Payload of the validate_request step, the execution request it checks, and its output."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from shared.config import Strategy

Action = Literal["deploy", "rebuild-base", "deploy-image", "rollback"]
Trigger = Literal["manual", "codecommit", "github", "schedule"]
Pipeline = Literal["app", "base"]

_AMI_ID = re.compile(r"^ami-[0-9a-f]{8,17}$")
_COMMIT = re.compile(r"^[0-9a-fA-F]{7,40}$")
_BRANCH_PREFIX = "refs/heads/"


def _ami_id(value: str) -> str:
    if not _AMI_ID.fullmatch(value):
        raise PydanticCustomError("ami_id", "must be an AMI id like ami-0123456789abcdef0")
    return value


def _commit(value: str) -> str:
    if not _COMMIT.fullmatch(value):
        raise PydanticCustomError("commit", "must be 7 to 40 hexadecimal characters")
    return value.lower()


def _rollback_target(value: str) -> str:
    if value == "previous" or _AMI_ID.fullmatch(value):
        return value
    raise PydanticCustomError("to", 'must be "previous" or an AMI id like ami-0123456789abcdef0')


def _branch(value: str) -> str:
    # A git ref as GitHub spells it ("refs/heads/main") names the same branch as "main".
    name = value.removeprefix(_BRANCH_PREFIX)
    if not name or name != name.strip() or any(c.isspace() for c in name):
        raise PydanticCustomError("branch", "must be a branch name without whitespace")
    return name


def _name(value: str) -> str:
    if not value or value != value.strip():
        raise PydanticCustomError("name", "must be non-empty without leading or trailing spaces")
    return value


AmiId = Annotated[str, AfterValidator(_ami_id)]


class _Input(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class _Output(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class ValidateRequestInput(_Input):
    """What the state machine passes: the execution's id and name, and its raw input (any JSON)."""

    execution_id: str = Field(min_length=1)
    execution_name: str = Field(min_length=1)
    input: Any


class ExecutionRequest(BaseModel):
    """The execution input as a user, a trigger or the schedule writes it (README, "Triggers and manual runs").

    Strict: JSON types only (no "true" for true), only the documented camelCase spellings, no other fields.
    """

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=False, extra="forbid", strict=True)

    action: Action
    commit: Annotated[str, AfterValidator(_commit)] | None = None
    branch: Annotated[str, Field(max_length=255), AfterValidator(_branch)] | None = None
    repository: Annotated[str, Field(max_length=255), AfterValidator(_name)] | None = None
    ami_id: AmiId | None = None
    to: Annotated[str, AfterValidator(_rollback_target)] | None = None
    stages: list[str] | None = None
    dry_run: bool = False
    trigger: Trigger = "manual"
    pusher: Annotated[str, Field(max_length=255), AfterValidator(_name)] | None = None
    delivery_id: Annotated[str, Field(max_length=255), AfterValidator(_name)] | None = None


class NormalisedRequest(_Output):
    action: Action
    commit: str | None
    branch: str | None
    repository: str | None
    ami_id: str | None  # for a rollback: the AMI it resolved to
    to: str | None
    stages: list[str]  # in configured order
    dry_run: bool
    trigger: Trigger
    pusher: str | None
    delivery_id: str | None


class TargetOut(_Output):
    auto_scaling_group_name: str
    launch_template_id: str


class StageOut(_Output):
    name: str
    approval: bool
    wave_size: int
    strategy: Strategy
    targets: list[TargetOut]


class ValidateRequestOutput(_Output):
    request: NormalisedRequest
    stages: list[StageOut]
    needs_bake: bool
    pipeline: Pipeline | None
