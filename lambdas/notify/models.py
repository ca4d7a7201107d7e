"""Input, output and environment of the notify step."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.models import ExecutionId, Payload, StepModel

# The events the state machine asks for; RolledBack follows one of them (shared.notifications), ApprovalRequested
# comes from register_wait.
StepEvent = Literal["DeploymentStarted", "DeploymentSucceeded", "DeploymentFailed", "DeploymentRejected", "Superseded"]


class NotifyRequest(StepModel):
    """What a notification says of validate_request's normalised request: the rest of it is ignored here."""

    model_config = ConfigDict(extra="ignore")

    action: str | None = None
    trigger: str | None = None
    commit: str | None = None
    branch: str | None = None
    pusher: str | None = None
    ami_id: str | None = None
    dry_run: bool = False


class NotifyTarget(StepModel):
    model_config = ConfigDict(extra="ignore")

    auto_scaling_group_name: str = Field(min_length=1)


class NotifyStage(StepModel):
    """A stage as validate_request outputs it (name and groups are all a notification names)."""

    model_config = ConfigDict(extra="ignore")

    name: str = Field(min_length=1)
    targets: list[NotifyTarget] = Field(default_factory=list)


class StepError(StepModel):
    """An error as a Catch records it ({"Error", "Cause"})."""

    model_config = ConfigDict(extra="ignore", alias_generator=None)

    Error: str | None = None
    Cause: str | None = None


class NotifyInput(Payload):
    event: StepEvent
    execution_id: ExecutionId
    started_at: datetime | None = Field(default=None, strict=False)  # $$.Execution.StartTime
    request: NotifyRequest | None = None  # absent when the request was rejected
    stages: list[NotifyStage] | None = None
    ami_id: str | None = None
    images: list[dict[str, Any]] | None = None
    outcome: str | None = None  # "deployed", or what the base rebuild found (BaseUnchanged)
    prune: dict[str, Any] | None = None  # PruneImages' last result (its `progress` sums every round)
    error: StepError | None = None  # DeploymentFailed, DeploymentRejected
    superseded: StepError | None = None  # Superseded: the JoinQueue task's failure


class NotifyOutput(StepModel):
    published: list[str]  # the events published, in order
    message_ids: list[str]


class NotifyEnvironment(BaseModel):
    """What the stack sets on the notify function (validated once, at cold start)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    topic_arn: str = Field(
        alias="NOTIFICATION_TOPIC_ARN",
        pattern=r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$",
    )
