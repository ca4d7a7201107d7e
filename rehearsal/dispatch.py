"""Lambda, played in-process: each function of the template runs its own handler with its own environment.

For every AWS::Lambda::Function in the template the dispatcher imports the module its `Handler` names,
with the function's `Environment` (intrinsics resolved to the emulated account's names) plus the variables
the Lambda runtime defines ("Defined runtime environment variables", AWS Lambda Developer Guide). The
handlers validate their environment at import, as they do at a cold start: a missing or malformed variable
fails the rehearsal naming the function and the variable. The context carries the template's memory size
and timeout.

An invocation answers as Lambda's Invoke does: the result as `Payload`, or, when the handler raises,
`FunctionError: "Unhandled"` with `errorType` = the exception's class name ("Lambda function errors in
Python", AWS Lambda Developer Guide). While a handler runs, every AWS call it makes is authorized against
the function's role (rehearsal.contract).

Each invocation is held to the function's `Timeout` from the template. Its duration is what it spends itself:
its real running time plus every simulated sleep it makes on its own thread (a throttled call's backoff, a
paced sleep), given to `sleeping(advance)`; the clock other branches of the workflow move meanwhile (their Wait
states, another function's sleeps) is not its time. An invocation that runs longer fails as Lambda fails it
(see `timed_out`), whatever the handler returned.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rehearsal.artifact import PROJECT_ROOT, Function
from rehearsal.clock import Activity, Event
from rehearsal.contract import Contract, Principal
from rehearsal.intrinsics import Resolver
from rehearsal.summaries import summarize


class RehearsalError(RuntimeError):
    """The artifact cannot run as deployed (a function's environment, a handler that does not import)."""


class _Context:
    """The Lambda context object (AWS Lambda Developer Guide, "Using the Lambda context object in Python")."""

    aws_request_id = "00000000-0000-0000-0000-000000000000"

    def __init__(self, name: str, arn: str, memory_mb: int, timeout_seconds: int, elapsed: Callable[[], float]) -> None:
        self.function_name = name
        self.invoked_function_arn = arn
        self.memory_limit_in_mb = memory_mb
        self.function_version = "$LATEST"
        self.log_group_name = f"/aws/lambda/{name}"
        self._timeout = timeout_seconds
        self._elapsed = elapsed

    def get_remaining_time_in_millis(self) -> int:
        """Counted as the invocation's timeout is judged: its own time, simulated sleeps included."""
        return max(0, int((self._timeout - self._elapsed()) * 1000))


class Dispatcher:
    """Runs the handler of the function an ARN names, answering like Lambda."""

    def __init__(
        self,
        resolver: Resolver,
        contract: Contract,
        scenario: dict[str, Any],
        events: list[Event],
        activity: Activity | None = None,
        base_environment: dict[str, str] | None = None,
    ) -> None:
        self.resolver = resolver
        self._local = threading.local()  # the running invocation's simulated sleeps, on its own thread
        self.contract = contract
        self.activity = activity or Activity()
        self.after: dict[str, Callable[[dict[str, Any], dict[str, Any]], None]] = {}  # step → world moves on
        self.before: dict[str, Callable[[dict[str, Any], int], None]] = {}  # step → before an attempt
        # step → [error or null, ...], or step → {group: [...]} for the invocations about that group only
        self._faults: dict[str, Any] = {
            step: {g: list(e) for g, e in errors.items()} if isinstance(errors, dict) else list(errors)
            for step, errors in scenario.get("lambdaFaults", {}).items()
        }
        self._events = events
        self._base = dict(base_environment or {})
        self.invocations: dict[str, int] = {}
        self.timeouts: list[tuple[str, float]] = []  # (step, simulated seconds) of each invocation that timed out
        self.logs: list[str] = []
        self.functions: dict[str, Function] = {}  # by ARN
        self._names: dict[str, str] = {}  # ARN → physical name
        self._environments: dict[str, dict[str, str]] = {}
        self._handlers: dict[str, Callable[[dict[str, Any], Any], Any]] = {}
        self.by_step: dict[str, str] = {}  # handler folder → ARN
        self._saved_modules: dict[str, Any] = {}
        # One invocation at a time: handlers share module state (Powertools' metrics, stdout capture) in this
        # process, where Lambda would give each concurrent invocation its own. Reentrant for the relay hook.
        self._serial = threading.RLock()

    def load(self) -> None:
        for logical_id, function in self.resolver.artifact.functions.items():
            arn = self.resolver.get_att(logical_id, "Arn")
            name = self.resolver.physical_name(logical_id)
            self.functions[arn], self._names[arn] = function, name
            self.by_step[function.step] = arn
            self._environments[arn] = self._environment(function, name)
        self._saved_modules = {m: sys.modules.pop(m) for m in list(sys.modules) if m.split(".")[0] in self.by_step}
        # handlers read their configuration at import: a cold start per rehearsal (the saved ones come back after)
        importlib.import_module("shared.aws.clients").client.cache_clear()
        for arn, function in self.functions.items():
            with self._as(arn), contextlib.redirect_stdout(io.StringIO()):
                try:
                    module = importlib.import_module(function.module)
                except Exception as exc:
                    raise RehearsalError(
                        f"function {function.logical_id} ({function.handler}) fails at its cold start: "
                        f"{type(exc).__name__}: {exc}"
                    ) from exc
            self._handlers[arn] = getattr(module, function.handler.rsplit(".", 1)[1])
            _check_code_root(module)

    def unload(self) -> None:
        """Forget this rehearsal's handler modules; whoever imported them before gets theirs back."""
        for name in [m for m in sys.modules if m.split(".")[0] in self.by_step]:
            del sys.modules[name]
        sys.modules.update(self._saved_modules)
        importlib.import_module("shared.aws.clients").client.cache_clear()

    def _environment(self, function: Function, name: str) -> dict[str, str]:
        variables = self.resolver.resolve(function.environment, f"{function.logical_id}.Environment")
        bad = [k for k, v in variables.items() if not isinstance(v, str)]
        if bad:
            raise RehearsalError(f"function {function.logical_id}: environment variables {bad} are not strings")
        region = self.resolver.account.region
        runtime = {  # AWS Lambda Developer Guide, "Defined runtime environment variables"
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "AWS_LAMBDA_FUNCTION_NAME": name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
            "_HANDLER": function.handler,
            "LAMBDA_TASK_ROOT": str(PROJECT_ROOT / "lambdas"),
        }
        return {**self._base, **runtime, **variables}

    @contextlib.contextmanager
    def _as(self, arn: str) -> Iterator[None]:
        """The process environment is the function's own while its code runs (one invocation at a time)."""
        saved = dict(os.environ)
        _become(self._environments[arn])
        try:
            yield
        finally:
            _become(saved)

    def sleeping(self, advance: Callable[[float], None]) -> Callable[[float], None]:
        """`advance` (the simulated clock's), also counted into the duration of the invocation running on the
        calling thread: what a handler's simulated sleeps (botocore's retry backoff) go through."""

        def sleep(seconds: float) -> None:
            if getattr(self._local, "slept", None) is not None:
                self._local.slept += max(0.0, seconds)
            advance(seconds)

        return sleep

    def arn_of(self, step: str) -> str:
        return self.by_step[step]

    def invoke(self, function_name: str, payload: Any, caller: Principal | None = None) -> dict[str, Any]:
        """`caller` (the state machine, or EventBridge for relay_event) must be allowed to invoke the function."""
        with self._serial:
            self.activity.begin()
            try:
                arn = self._arn(function_name)
                if caller is not None:
                    self.contract.authorize(caller, "lambda", "Invoke", {"FunctionName": function_name})
                return self._invoke(arn, payload)
            except RehearsalError as exc:  # moto would turn it into a task failure a Catch hides: record it
                self.contract.errors.append(f"dispatch: {exc}")
                raise
            finally:
                self.activity.end()

    def _harness(self, hook: Callable[..., None], *args: Any) -> None:
        """The scenario's world moving on; its failure is the rehearsal's, never the step's."""
        try:
            with self.contract.as_harness():
                hook(*args)
        except Exception as exc:
            raise RehearsalError(f"the scenario's script failed: {type(exc).__name__}: {exc}") from exc

    def _arn(self, function_name: str) -> str:
        arn = function_name.removesuffix(":$LATEST")
        if arn in self.functions:
            return arn
        named = [a for a, n in self._names.items() if n == function_name]
        if not named:
            raise RehearsalError(f"no function {function_name} in the template")
        return named[0]

    def _invoke(self, arn: str, payload: Any) -> dict[str, Any]:
        function = self.functions[arn]
        step = function.step
        event = json.loads(payload) if isinstance(payload, bytes | str) else payload or {}
        self.invocations[step] = self.invocations.get(step, 0) + 1
        if step in self.before:
            self._harness(self.before[step], event, self.invocations[step])
        faults = self._faults.get(step)
        if isinstance(faults, dict):  # faults of one group: the invocations whose input names it
            text = json.dumps(event)
            faults = next((f for group, f in faults.items() if json.dumps(group) in text), None)
        error = faults.pop(0) if faults else None  # a null entry: this invocation runs normally
        if error is not None:
            self._events.append(Event(time.time(), f"{step}: Lambda answered {error} (scenario fault)"))
            return _function_error(error, "rehearsal fault")
        out = io.StringIO()
        started = time.time()
        try:
            with self._timed() as elapsed:
                context = _Context(self._names[arn], arn, function.memory_mb, function.timeout_seconds, elapsed)
                principal = Principal(step, function.role)
                with self._as(arn), self.contract.acting_as(principal), contextlib.redirect_stdout(out):
                    result = self._handlers[arn](event, context)
        except Exception as exc:
            self.logs.append(out.getvalue() + traceback.format_exc())
            timeout = self._timed_out(function, elapsed())
            if timeout is not None:
                return timeout
            self._events.append(Event(time.time(), f"{step}: {type(exc).__name__}: {exc}"))
            return _function_error(type(exc).__name__, str(exc))
        self.logs.append(out.getvalue())
        timeout = self._timed_out(function, elapsed())
        if timeout is not None:
            return timeout  # its result never reaches the caller, and the world does not move on from it
        # An answer does not always say what it was about (register_wait's what it waits for, prune_images' whether
        # it was a dry run): the request does.
        summary = summarize(step, result, event if isinstance(event, dict) else {})
        if summary:  # said as of when the step began: a relay's SendTaskSuccess lets the next state in meanwhile
            self._events.append(Event(started, summary))
        if step in self.after:
            self._harness(self.after[step], event, result)
        return {"StatusCode": 200, "Payload": result}

    @contextlib.contextmanager
    def _timed(self) -> Iterator[Callable[[], float]]:
        """The running invocation's duration: real time plus its own simulated sleeps (`sleeping`), fixed when
        the block ends. Sleeps of an invocation made from inside another's (the relay hook) count for both."""
        outer = getattr(self._local, "slept", None)
        self._local.slept = 0.0
        started = time.time()
        ended: list[float] = []

        def elapsed() -> float:
            return ended[0] if ended else time.time() - started + float(self._local.slept)

        try:
            yield elapsed
        finally:
            ended.append(elapsed())
            self._local.slept = None if outer is None else outer + float(self._local.slept)

    def _timed_out(self, function: Function, elapsed: float) -> dict[str, Any] | None:
        """Lambda's answer when the invocation outlived the function's Timeout, else None."""
        if elapsed <= function.timeout_seconds:
            return None
        self.timeouts.append((function.step, elapsed))
        self._events.append(
            Event(
                time.time(),
                f"{function.step}: Sandbox.Timedout after {function.timeout_seconds} s "
                f"(the handler took {elapsed:.0f} s of simulated time)",
            )
        )
        return timed_out(function.timeout_seconds, _Context.aws_request_id)


def timed_out(timeout_seconds: int, request_id: str) -> dict[str, Any]:
    """What Lambda's Invoke answers for an invocation that ran past the function's timeout.

    AWS Lambda API Reference, Invoke, response `X-Amz-Function-Error`: "If present, indicates that an error
    occurred during function execution"; the AWS Lambda Developer Guide ("Troubleshoot invocation issues in
    Lambda", Sandbox.Timedout; "Configure Lambda function timeout": Lambda stops the invocation at the timeout)
    names the error type, and the message is the runtime's "Task timed out after N seconds" (as the AWS Lambda
    Runtime Interface Emulator writes it: `RequestId: <id> Error: Task timed out after N.00 seconds`).
    Step Functions then reports, for a `lambda:invoke` task, the payload's errorType as the error name (AWS Step
    Functions Developer Guide, tutorial "Handling error conditions in a Step Functions state machine": the
    function's error type is what a Retrier or Catcher matches; moto does the same), so a state machine sees
    `Sandbox.Timedout`, not `States.Timeout`, which is the state's own TimeoutSeconds. The issue asked for
    States.Timeout; following AWS is also the safer reading: a Retry listing only States.Timeout does not retry
    a function timeout on AWS, and the rehearsal must not pretend it does. States.TaskFailed and States.ALL
    match it. Where the handler ran past its timeout, its side effects stay (the rehearsal cannot undo them;
    AWS would have stopped it at the timeout), and the simulated clock is not wound back."""
    return {
        "StatusCode": 200,
        "FunctionError": "Unhandled",
        "Payload": {
            "errorType": "Sandbox.Timedout",
            "errorMessage": f"RequestId: {request_id} Error: Task timed out after {timeout_seconds:.2f} seconds",
        },
    }


def _function_error(error_type: str, message: str) -> dict[str, Any]:
    return {
        "StatusCode": 200,
        "FunctionError": "Unhandled",
        "Payload": {"errorType": error_type, "errorMessage": message},
    }


def _become(environment: dict[str, str]) -> None:
    """Make os.environ equal `environment`, setting before removing: moto's interpreter threads read it meanwhile
    (MOTO_* settings, credentials), and must never see it empty."""
    os.environ.update(environment)
    for name in [k for k in os.environ if k not in environment]:
        del os.environ[name]


def _check_code_root(module: Any) -> None:
    """The handler must be this checkout's: the Lambda code root (lambdas/, LAMBDA_TASK_ROOT in AWS) is on the
    path through the project's editable install (pyproject.toml), which may point at another checkout."""
    root = PROJECT_ROOT / "lambdas"
    source = Path(module.__file__ or "").resolve()
    if not source.is_relative_to(root.resolve()):
        raise RehearsalError(
            f"{module.__name__} was imported from {source}, not from {root}: this venv's editable install "
            "belongs to another checkout; run `make setup` here (or `pip install -e .`)"
        )
