"""Handlers for steps whose logic arrives with a later issue.

They fail loudly with `NotImplementedYet`, so an execution that reaches them stops on the
state machine's failure path (lock released, notification sent) instead of pretending to succeed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shared.errors import NotImplementedYet
from shared.observability import logger


def not_implemented_handler(step: str, issue: int) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        message = f"step {step!r} is not implemented yet (it arrives with issue #{issue}); nothing was changed"
        logger.error(message, extra={"step": step, "executionId": event.get("executionId")})
        raise NotImplementedYet(message)

    return lambda_handler
