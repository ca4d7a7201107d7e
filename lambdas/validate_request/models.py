"""Payload of the validate_request step, the execution request it checks, and its output."""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from shared.config import Strategy
from shared.models import ExecutionId, Payload, StepModel

Action = Literal["deploy", "rebuild-base", "deploy-image", "rollback"]
Trigger = Literal["manual", "codecommit", "github", "schedule"]
# What an execution does when another deployment holds one of its targets: wait within lock.waitSeconds and fail
# with DeploymentInProgress, or queue until the holder ends (the newest queued push wins, lambdas/lock).
WhenBusy = Literal["queue", "wait"]
Pipeline = Literal["app", "base"]

_AMI_ID = re.compile(r"^ami-[0-9a-f]{8,17}$")
# A commit is named by its full SHA-1, exactly as git prints it (git rev-parse): a shorter prefix may also be the
# name of a tag or branch, and CodeCommit's GetCommit takes full IDs only ("Commit IDs are the full SHA ID of the
# commit", https://docs.aws.amazon.com/codecommit/latest/APIReference/API_GetCommit.html).
FULL_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_HEX = re.compile(r"^[0-9a-fA-F]+$")
_BRANCH_PREFIX = "refs/heads/"
# Unicode categories no input may contain anywhere: control characters (newline, tab, NUL...), format characters
# (zero-width space, BOM, bidi overrides), surrogates, line and paragraph separators.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def plain_text(value: Any) -> Any:
    """Refuse a string with a control character or line break anywhere, or whitespace at either end.

    Nothing is trimmed: a value that is not exactly what it looks like is refused, not repaired. Other types pass
    through to the field's own type check."""
    if not isinstance(value, str):
        return value
    for index, char in enumerate(value):
        if unicodedata.category(char) in _INVISIBLE_CATEGORIES:
            raise PydanticCustomError(
                "plain_text",
                "must not contain a control character or line break (U+{code} at index {index}); "
                "values are used exactly as given, never trimmed",
                {"code": f"{ord(char):04X}", "index": index},
            )
    if value != value.strip():
        raise PydanticCustomError(
            "plain_text", "must not start or end with whitespace; values are used exactly as given, never trimmed"
        )
    return value


PlainText = BeforeValidator(plain_text)


def _ami_id(value: str) -> str:
    if not _AMI_ID.fullmatch(value):
        raise PydanticCustomError("ami_id", "must be an AMI id like ami-0123456789abcdef0")
    return value


def _commit(value: str) -> str:
    if FULL_COMMIT.fullmatch(value):
        return value
    shown = value if len(value) <= 64 else value[:64] + "..."
    if _HEX.fullmatch(value) and len(value) < 40:
        raise PydanticCustomError(
            "commit",
            '"{value}" is not a full commit SHA (40 hex characters): short SHAs can name a tag or branch; '
            "give the full SHA (git rev-parse {value})",
            {"value": shown},
        )
    if _HEX.fullmatch(value) and len(value) == 40:
        raise PydanticCustomError(
            "commit",
            '"{value}" has upper-case letters: give the full commit SHA in lower case, as git rev-parse prints it',
            {"value": shown},
        )
    raise PydanticCustomError(
        "commit",
        '"{value}" is not a full commit SHA (40 lower-case hex characters): give the commit, not a branch or tag '
        "name (git rev-parse <branch> prints it)",
        {"value": shown},
    )


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
    if not value:
        raise PydanticCustomError("name", "must not be empty")
    return value


class ValidateRequestInput(Payload):
    """What the state machine passes: the execution's id and name, and its raw input (any JSON)."""

    execution_id: ExecutionId
    execution_name: str = Field(min_length=1)
    input: Any


class ExecutionRequest(BaseModel):
    """The execution input as a user, a trigger or the schedule writes it (README, "Triggers and manual runs").

    Strict: JSON types only (no "true" for true), only the documented camelCase spellings, no other fields.
    """

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=False, extra="forbid", strict=True)

    # Every string is plain text (PlainText): no control character or line break, no whitespace at either end.
    action: Annotated[Action, PlainText]
    commit: Annotated[str, PlainText, AfterValidator(_commit)] | None = None
    branch: Annotated[str, PlainText, Field(max_length=255), AfterValidator(_branch)] | None = None
    repository: Annotated[str, PlainText, Field(max_length=255), AfterValidator(_name)] | None = None
    ami_id: Annotated[str, PlainText, AfterValidator(_ami_id)] | None = None
    to: Annotated[str, PlainText, AfterValidator(_rollback_target)] | None = None
    stages: list[Annotated[str, PlainText]] | None = None
    dry_run: bool = False
    trigger: Annotated[Trigger, PlainText] = "manual"
    pusher: Annotated[str, PlainText, Field(max_length=255), AfterValidator(_name)] | None = None
    delivery_id: Annotated[str, PlainText, Field(max_length=255), AfterValidator(_name)] | None = None
    when_busy: Annotated[WhenBusy, PlainText] | None = None  # default: "queue" for triggers, "wait" for manual runs


class NormalisedRequest(StepModel):
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
    when_busy: WhenBusy = "wait"  # validate_request always sets it; steps that read a request older than it wait


class TargetOut(StepModel):
    auto_scaling_group_name: str
    launch_template_id: str


class StageOut(StepModel):
    name: str
    approval: bool
    wave_size: int
    strategy: Strategy
    targets: list[TargetOut]


class ValidateRequestOutput(StepModel):
    request: NormalisedRequest
    stages: list[StageOut]
    needs_bake: bool
    pipeline: Pipeline | None
