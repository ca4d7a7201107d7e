"""EventBridge target: resume the execution waiting for the instance refresh or image build an event reports."""

from __future__ import annotations

from functools import cache

from aws_lambda_powertools.utilities.typing import LambdaContext

from relay_event import logic
from relay_event.models import EventBridgeEvent, RelayEventEnvironment, RelayEventOutput
from shared.aws.task_tokens import TaskTokens, WaitTable
from shared.environment import load_environment
from shared.handler import step_handler
from shared.observability import logger

ENV = load_environment(RelayEventEnvironment, "relay_event")


@cache
def wait_table() -> WaitTable:
    return WaitTable(ENV.lock_table_name)


task_tokens = cache(TaskTokens)


@step_handler(EventBridgeEvent)
def lambda_handler(parsed: EventBridgeEvent, context: LambdaContext) -> RelayEventOutput:
    # An EventBridge event carries no executionId: logic sets the resource id as the correlation id.
    logger.info(
        "relay_event: event received",
        extra={"source": parsed.source, "detailType": parsed.detail_type, "resources": parsed.resources},
    )
    return logic.run(parsed, waits=wait_table(), tokens=task_tokens())
