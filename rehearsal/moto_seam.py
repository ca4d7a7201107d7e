"""The one seam into moto's Step Functions interpreter (moto 5.2.5, pinned in requirements-dev.txt).

moto runs the real ASL (`execute_state_machine`), but for a local rehearsal three of its behaviours
must change, and this module is the only place that changes them:

1. Lambda tasks: moto would invoke functions through its Lambda emulation (Docker or a canned
   reply). `lambda_eval_utils._invoke_lambda_function` is replaced by a dispatcher that runs the
   real handler in-process and answers like Lambda does (a `FunctionError` payload with
   `errorType`/`errorMessage` when the handler raises).
2. Wait states really sleep: `WaitFunction._wait_interval` is replaced so that a Wait advances the
   simulated clock instead.
3. Retry intervals really sleep: the `time` module seen by `retrier_decl` is replaced by one whose
   `sleep` advances the simulated clock.
4. A task token's timeout is a real wait: `StateTaskServiceCallback._wait_for_task_token_timeout`
   is replaced by one that returns the callback as soon as it arrives, or, when the rehearsal knows
   the token will not be answered (a lost event, a resource that never finishes) and is idle,
   times out at once and advances the simulated clock by the timeout. The fallback poll after a
   lost event then costs no real time. Approvals (heartbeat waits) and other tasks are untouched.

`install()` checks the moto version and that every patched name still exists, and raises
`SeamBrokenError` otherwise; tests/statemachine/test_moto_seam.py runs that check, so an upgrade of moto
that moves these internals fails loudly instead of silently running real sleeps or fake Lambdas.
"""

from __future__ import annotations

import contextlib
import importlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import moto

PINNED_MOTO_VERSION = "5.2.5"

_LAMBDA_UTILS = "moto.stepfunctions.parser.asl.component.state.exec.state_task.lambda_eval_utils"
_WAIT_FUNCTION = "moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function"
_RETRIER = "moto.stepfunctions.parser.asl.component.common.retry.retrier_decl"
_CALLBACK = "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_callback"
MAX_REAL_WAIT_SECONDS = 30.0  # a token unanswered this long in real time is a rehearsal bug: time it out

# (module, attribute) pairs this seam replaces.
PATCHED = (
    (_LAMBDA_UTILS, "_invoke_lambda_function"),
    (_WAIT_FUNCTION, "WaitFunction"),
    (_RETRIER, "time"),
    (_CALLBACK, "StateTaskServiceCallback"),
)

InvokeFn = Callable[[str, Any], dict[str, Any]]
"""(function name or ARN, payload) → a Lambda Invoke response: {"StatusCode", "Payload", ["FunctionError"]}."""


class SeamBrokenError(RuntimeError):
    """moto's internals no longer look like this seam expects: pin moto back or update the seam."""


def check() -> None:
    if moto.__version__ != PINNED_MOTO_VERSION:
        raise SeamBrokenError(
            f"moto {moto.__version__} is installed; the rehearsal seam is written for {PINNED_MOTO_VERSION}"
        )
    for module_name, attribute in PATCHED:
        module = importlib.import_module(module_name)
        if not hasattr(module, attribute):
            raise SeamBrokenError(f"{module_name}.{attribute} is gone: the rehearsal seam must be updated")
    for module_name, class_name, method in (
        (_WAIT_FUNCTION, "WaitFunction", "_wait_interval"),
        (_CALLBACK, "StateTaskServiceCallback", "_wait_for_task_token_timeout"),
    ):
        if not hasattr(getattr(importlib.import_module(module_name), class_name), method):
            raise SeamBrokenError(f"{module_name}.{class_name}.{method} is gone: the rehearsal seam must be updated")


class _SimulatedTime:
    """Stands in for the `time` module inside the retrier: sleeping advances the simulated clock."""

    def __init__(self, advance: Callable[[float], None]) -> None:
        self._advance = advance

    def sleep(self, seconds: float) -> None:
        self._advance(seconds)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


@contextlib.contextmanager
def install(
    invoke: InvokeFn, advance: Callable[[float], None], take_timeout: Callable[[], bool] = lambda: False
) -> Iterator[None]:
    """`take_timeout()` answers True (once per expected timeout) when a task token will not be answered."""
    """Patch moto's interpreter for the duration of the block; restore everything afterwards."""
    check()
    lambda_utils = importlib.import_module(_LAMBDA_UTILS)
    wait_function = importlib.import_module(_WAIT_FUNCTION).WaitFunction
    retrier = importlib.import_module(_RETRIER)
    callback_task = importlib.import_module(_CALLBACK).StateTaskServiceCallback

    def invoke_lambda_function(parameters: dict[str, Any], region: str, state_credentials: Any) -> dict[str, Any]:
        return invoke(parameters["FunctionName"], parameters.get("Payload"))

    def wait_interval(self: Any, env: Any, wait_seconds: int) -> None:
        advance(float(wait_seconds))

    def wait_for_task_token_timeout(self: Any, timeout_seconds: int, callback_endpoint: Any) -> Any:
        deadline = time.time() + MAX_REAL_WAIT_SECONDS
        while True:
            outcome = callback_endpoint.wait(timeout=0.02)
            if outcome is not None:
                return outcome
            if take_timeout() or time.time() > deadline:
                advance(float(timeout_seconds))
                return None

    replacements = (
        (lambda_utils, "_invoke_lambda_function", invoke_lambda_function),
        (wait_function, "_wait_interval", wait_interval),
        (retrier, "time", _SimulatedTime(advance)),
        (callback_task, "_wait_for_task_token_timeout", wait_for_task_token_timeout),
    )
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in replacements]
    for owner, name, replacement in replacements:
        setattr(owner, name, replacement)
    try:
        yield
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)
