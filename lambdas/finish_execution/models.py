"""Input (EventBridge's "Step Functions Execution Status Change"), output and environment of finish_execution."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from shared.models import StepModel


class ExecutionStatusDetail(StepModel):
    """The detail of a "Step Functions Execution Status Change" event (EventBridge events reference, Step Functions
    events); fields this step does not read (startDate, stopDate, input, output...) are ignored."""

    model_config = ConfigDict(extra="ignore")

    execution_arn: str = Field(min_length=1)
    state_machine_arn: str = Field(min_length=1)
    status: str = Field(min_length=1)
    error: str | None = None
    cause: str | None = None


class ExecutionStatusEvent(BaseModel):
    model_config = ConfigDict(populate_by_name=True, frozen=True, extra="ignore")

    source: str
    detail_type: str = Field(alias="detail-type")
    detail: ExecutionStatusDetail


class TargetCleanup(StepModel):
    auto_scaling_group_name: str
    outcome: str  # "untouched", "deployed", "rolled-back", "check-by-hand"
    actions: list[str]


class FinishExecutionOutput(StepModel):
    execution_arn: str
    status: str
    handled: bool  # the execution ended through its own failure path: it already cleaned up and told
    locks_released: list[str]
    # Queued deployments resumed because this execution's locks were released.
    queued_woken: list[str] = Field(default_factory=list)
    targets: list[TargetCleanup]
    notified: bool


class FinishExecutionEnvironment(BaseModel):
    """What the stack sets on the finish_execution function (validated once, at cold start)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    lock_table_name: str = Field(alias="LOCK_TABLE_NAME", min_length=1)
    # Whole ARNs, not prefixes: topic names are 1-256 of A-Za-z0-9_- (a FIFO topic's ends in .fifo,
    # https://docs.aws.amazon.com/sns/latest/api/API_CreateTopic.html); state machine names as the webhook's.
    topic_arn: str = Field(
        alias="NOTIFICATION_TOPIC_ARN",
        pattern=r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$",
    )
    state_machine_arn: str = Field(
        alias="STATE_MACHINE_ARN",
        pattern=r"^arn:aws[a-z-]*:states:[a-z0-9-]+:[0-9]{12}:stateMachine:[A-Za-z0-9_-]{1,80}$",
    )
