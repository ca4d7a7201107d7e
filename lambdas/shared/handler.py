"""The shell every function's `lambda_handler` shares, so a handler keeps only what is its own.

`observed` applies the Powertools decorators in the one order (the logger's context, with the correlation id taken
from the event, outside; metrics flushed inside). `step_handler` adds what every task of the state machine does
around its logic: the event parsed into the step's input model (a bad one fails with `InvalidInput`), and the
output model dumped as the state machine reads it (camelCase aliases, JSON types)::

    @step_handler(CheckRefreshInput)
    def lambda_handler(request: CheckRefreshInput, context: LambdaContext) -> CheckRefreshOutput:
        return logic.run(request, CONFIG, autoscaling=autoscaling(), load_balancing=load_balancing())
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from shared.observability import CORRELATION_ID_PATH, logger, metrics
from shared.parsing import parse_step_input

InputT = TypeVar("InputT", bound=BaseModel)
Handler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]
Step = Callable[[InputT, LambdaContext], BaseModel]


def observed(
    *, correlation_id_path: str | None = CORRELATION_ID_PATH, log_event: bool | None = None
) -> Callable[[Handler], Handler]:
    """Powertools' logger context (correlation id at `correlation_id_path` of the event) around its metrics."""

    def decorate(handler: Handler) -> Handler:
        with_metrics = metrics.log_metrics(handler)
        wrapped: Handler = logger.inject_lambda_context(
            with_metrics, log_event=log_event, correlation_id_path=correlation_id_path
        )
        return wrapped

    return decorate


def step_handler(
    model: type[InputT], *, correlation_id_path: str = CORRELATION_ID_PATH
) -> Callable[[Step[InputT]], Handler]:
    """A `lambda_handler` that parses the event into `model`, calls the step, and dumps the model it returns."""

    def decorate(step: Step[InputT]) -> Handler:
        @observed(correlation_id_path=correlation_id_path)
        def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
            output = step(parse_step_input(event, model), context)
            return output.model_dump(by_alias=True, mode="json")

        return lambda_handler

    return decorate
