"""Step Functions: start an execution under a given name.

Execution names of a Standard state machine are unique for 90 days after the execution closes, so
the name is the idempotency key. StartExecution answers a name that is taken in two ways: with the
running execution of the same name and the same input (a success whose startDate is the original
one), or with ExecutionAlreadyExists (the execution has closed, or its input differs); both are
reported here as an outcome, not an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from shared.aws.clients import adapter_client
from shared.errors import StateMachineNotFound

_STATE_MACHINE_GONE = frozenset({"StateMachineDoesNotExist", "StateMachineDeleting"})


@dataclass(frozen=True)
class StartedExecution:
    execution_arn: str
    start_date: datetime | None  # None when AWS answered ExecutionAlreadyExists
    already_existed: bool  # ExecutionAlreadyExists: the name is taken by a closed execution or another input


def execution_arn(state_machine_arn: str, name: str) -> str:
    """arn:<partition>:states:<region>:<account>:stateMachine:<machine>[:<version|alias>] → the execution's ARN."""
    parts = state_machine_arn.split(":")
    if len(parts) < 7 or parts[2] != "states" or parts[5] != "stateMachine":
        raise ValueError(f"not a state machine ARN: {state_machine_arn}")
    return ":".join([*parts[:5], "execution", parts[6], name])


class StepFunctions:
    def __init__(self, stepfunctions: Any = None) -> None:
        self._sfn = adapter_client(stepfunctions, "stepfunctions")

    def start_execution(self, state_machine_arn: str, name: str, execution_input: str) -> StartedExecution:
        try:
            response = self._sfn.start_execution(stateMachineArn=state_machine_arn, name=name, input=execution_input)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = error.get("Code")
            if code == "ExecutionAlreadyExists":
                return StartedExecution(
                    execution_arn=execution_arn(state_machine_arn, name), start_date=None, already_existed=True
                )
            if code in _STATE_MACHINE_GONE:
                raise StateMachineNotFound(f"{state_machine_arn}: {code}: {error.get('Message', '')}") from exc
            raise
        return StartedExecution(
            execution_arn=response["executionArn"], start_date=response.get("startDate"), already_existed=False
        )


def last_state_entered(events: list[dict[str, Any]]) -> str | None:
    """The name of the newest state an execution entered (events ordered by their id, whatever order they came in:
    moto ignores reverseOrder)."""
    for event in sorted(events, key=lambda e: int(e.get("id", 0)), reverse=True):
        details = event.get("stateEnteredEventDetails")
        if details:
            return str(details.get("name"))
    return None


class ExecutionHistory:
    def __init__(self, stepfunctions: Any = None) -> None:
        self._sfn = adapter_client(stepfunctions, "stepfunctions")

    def last_state(self, execution: str, events: int = 20) -> str | None:
        """The state an execution entered last (GetExecutionHistory, newest first): where it ended."""
        page = self._sfn.get_execution_history(executionArn=execution, reverseOrder=True, maxResults=events)
        return last_state_entered(page.get("events", []))
