"""Input, output and environment of the register_wait step."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.models import Payload, StepInput, StepModel
from shared.statuses import FINAL_IMAGE_STATUSES, FINAL_REFRESH_STATUSES

WaitKind = Literal["refresh", "image", "approval"]
# An image *build version* ARN (botocore imagebuilder ImageBuildVersionArn): the ARN Image Builder's state
# change events name in resources[0], so the only one a wait can be matched with.
IMAGE_BUILD_VERSION_ARN_PATTERN = (
    r"^arn:aws[^:]*:imagebuilder:[^:]+:(?:[0-9]{12}|aws(?:-[a-z-]+)?):image/[a-z0-9-_]+/[0-9]+\.[0-9]+\.[0-9]+/[0-9]+$"
)

# A wait ends on these statuses; anything else is still under way. An approval has no status: only a person ends it.
TERMINAL_STATUSES: dict[str, frozenset[str]] = {
    "refresh": FINAL_REFRESH_STATUSES,
    "image": FINAL_IMAGE_STATUSES,
    "approval": frozenset(),
}


class ApprovalRequest(Payload):
    """What an approval waits on, for the mail (kind approval only)."""

    stage: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")  # shared.config.Stage.name
    ami_id: str | None = None
    commit: str | None = None
    images: list[dict[str, Any]] | None = None  # a base rebuild: the image of each commit (no single AMI)
    # approval.timeoutHours in seconds: the task's TimeoutSecondsPath, so the mail's deadline and the item's TTL.
    timeout_seconds: int = Field(gt=0, le=8760 * 3600)


class RegisterWaitInput(StepInput):
    task_token: str = Field(min_length=1, max_length=2048, repr=False)  # $$.Task.Token
    kind: WaitKind
    # The instance refresh id (kind refresh) or the image build version ARN (kind image).
    resource_id: str = Field(min_length=1, max_length=1024)
    auto_scaling_group_name: str | None = Field(default=None, min_length=1, max_length=255)
    approval: ApprovalRequest | None = None  # kind approval only


class ApprovalMessage(StepModel):
    """The ApprovalRequested notification: what waits, since and until when, and how to answer. Never the token."""

    event: Literal["ApprovalRequested"] = "ApprovalRequested"
    stage: str
    execution_id: str
    ami_id: str | None
    commit: str | None
    images: list[dict[str, Any]] | None
    requested_at: str  # ISO 8601, UTC
    expires_at: str  # requested_at + approval.timeoutHours: unanswered by then, the deployment fails ApprovalExpired
    timeout_hours: float
    approve: str  # the exact make commands, run under the approver's own IAM identity (the approvers' managed policy)
    reject: str


class RegisterWaitOutput(StepModel):
    registered: bool
    already_done: bool  # the resource had already finished when the wait was registered
    status: str | None  # its status at that look (None when the look failed or found nothing yet)


class RegisterWaitEnvironment(BaseModel):
    """What the stack sets on the register_wait function (validated once, at cold start)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    lock_table_name: str = Field(alias="LOCK_TABLE_NAME", min_length=1)
    wait_ttl_seconds: int = Field(alias="WAIT_TTL_SECONDS", gt=0)
    # Where the approval requests go (kind approval).
    topic_arn: str = Field(
        alias="NOTIFICATION_TOPIC_ARN",
        pattern=r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$",
    )
