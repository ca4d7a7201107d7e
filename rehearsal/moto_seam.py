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

# (module, attribute) pairs this seam replaces.
PATCHED = (
    (_LAMBDA_UTILS, "_invoke_lambda_function"),
    (_WAIT_FUNCTION, "WaitFunction"),
    (_RETRIER, "time"),
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
    wait_function = importlib.import_module(_WAIT_FUNCTION).WaitFunction
    if not hasattr(wait_function, "_wait_interval"):
        raise SeamBrokenError(f"{_WAIT_FUNCTION}.WaitFunction._wait_interval is gone: the seam must be updated")


class _SimulatedTime:
    """Stands in for the `time` module inside the retrier: sleeping advances the simulated clock."""

    def __init__(self, advance: Callable[[float], None]) -> None:
        self._advance = advance

    def sleep(self, seconds: float) -> None:
        self._advance(seconds)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


@contextlib.contextmanager
def install(invoke: InvokeFn, advance: Callable[[float], None]) -> Iterator[None]:
    """Patch moto's interpreter for the duration of the block; restore everything afterwards."""
    check()
    lambda_utils = importlib.import_module(_LAMBDA_UTILS)
    wait_function = importlib.import_module(_WAIT_FUNCTION).WaitFunction
    retrier = importlib.import_module(_RETRIER)

    def invoke_lambda_function(parameters: dict[str, Any], region: str, state_credentials: Any) -> dict[str, Any]:
        return invoke(parameters["FunctionName"], parameters.get("Payload"))

    def wait_interval(self: Any, env: Any, wait_seconds: int) -> None:
        advance(float(wait_seconds))

    replacements = (
        (lambda_utils, "_invoke_lambda_function", invoke_lambda_function),
        (wait_function, "_wait_interval", wait_interval),
        (retrier, "time", _SimulatedTime(advance)),
    )
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in replacements]
    for owner, name, replacement in replacements:
        setattr(owner, name, replacement)
    try:
        yield
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)
