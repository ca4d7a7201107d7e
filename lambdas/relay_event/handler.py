"""EventBridge target: resume the execution waiting for the instance refresh or image build an event reports."""

from __future__ import annotations

from functools import cache

from aws_lambda_powertools.utilities.typing import LambdaContext

from relay_event import logic
from relay_event.models import EventBridgeEvent, RelayEventEnvironment
from shared.aws.task_tokens import TaskTokens, WaitTable
from shared.environment import load_environment
from shared.observability import CORRELATION_ID_PATH, logger, metrics
from shared.parsing import parse_step_input

ENV = load_environment(RelayEventEnvironment, "relay_event")


@cache
def wait_table() -> WaitTable:
    return WaitTable(ENV.lock_table_name)


@cache
def task_tokens() -> TaskTokens:
    return TaskTokens()


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH)
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    # An EventBridge event carries no executionId: logic sets the resource id as the correlation id.
    parsed = parse_step_input(event, EventBridgeEvent)
    logger.info(
        "relay_event: event received",
        extra={"source": parsed.source, "detailType": parsed.detail_type, "resources": parsed.resources},
    )
    output = logic.run(parsed, wait_table(), task_tokens())
    return output.model_dump(by_alias=True, mode="json")
