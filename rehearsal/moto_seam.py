"""The one seam into moto's Step Functions interpreter (moto 5.2.5, pinned in requirements-dev.txt).

moto runs the real ASL (`execute_state_machine`), but for a local rehearsal some of its behaviours must
change: it sleeps for real where AWS waits, and it skips some of the rules and limits AWS enforces. This
module is the only place that changes them:

1. Lambda tasks: moto would invoke functions through its Lambda emulation (Docker or a canned
   reply). `lambda_eval_utils._invoke_lambda_function` is replaced by a dispatcher that runs the
   real handler in-process and answers like Lambda does (a `FunctionError` payload with
   `errorType`/`errorMessage` when the handler raises).
2. Wait states really sleep: `WaitFunction._wait_interval` is replaced so that a Wait advances the
   simulated clock instead.
3. Retry intervals really sleep: the `time` module seen by `retrier_decl` is replaced by one whose
   `sleep` advances the simulated clock.
4. A task token's wait is a real wait: `StateTaskServiceCallback._eval_wait_for_task_token` is replaced
   by one that returns the callback as soon as it arrives, or, when the rehearsal knows the token will
   not be answered (a lost event, a resource that never finishes) and is idle, ends the task at once and
   advances the simulated clock to the deadline it missed. Both deadlines AWS keeps are simulated:
   `TimeoutSeconds`/`TimeoutSecondsPath` (States.Timeout) and `HeartbeatSeconds` (States.HeartbeatTimeout,
   whatever TimeoutSeconds says). Given `now` (the simulated clock), an answer or heartbeat that arrives
   after its simulated deadline does not count: the task has already timed out, as on AWS. A task that
   lists States.Timeout in its Retry is retried, each attempt costing its timeout (moto's own retry loop).
5. moto reports a heartbeat timeout as States.Timeout: `StateTaskServiceCallback._from_error` names it
   States.HeartbeatTimeout, as AWS does.
6. moto records any number of history events: `EventManager.add_event` stops the execution at the
   history quota (25,000 events): that event is its ExecutionFailed, States.Runtime, and no Retry or
   Catch runs. `Environment.set_error` keeps that failure as the execution's error, and keeps a stopped
   execution stopped: StopExecution ends it ABORTED (AWS Step Functions API Reference, StopExecution), while moto
   lets the task it interrupted fail afterwards and turn it into FAILED.
7. moto checks the 256 KiB payload quota on a state's output and a task's result, but lets Retry and
   Catch handle the error, and does not check a task's input after Parameters:
   `StateTaskService._before_eval_execution` checks the input, and `ErrorEqualsDecl._eval_body` lets no
   Retrier or Catcher match States.DataLimitExceeded, a terminal error.
8. A Parallel branch or a Map iteration that fails with a States.* error (States.Timeout, States.TaskFailed,
   ...) crashes moto's `CustomErrorName` check, and the Parallel or Map then fails with States.Runtime:
   `branches_decl` and `iteration_worker` are given an error-name factory that keeps the branch's error.

`install()` checks the moto version and that every patched name still exists, and raises
`SeamBrokenError` otherwise; tests/statemachine/test_moto_seam.py runs that check, so an upgrade of moto
that moves these internals fails loudly instead of silently running real sleeps or fake Lambdas.
"""

from __future__ import annotations

import contextlib
import importlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import moto

from rehearsal import clock
from rehearsal.emulation import replaced
from rehearsal.limits import DATA_LIMIT_EXCEEDED, HISTORY_CAP, HISTORY_CAP_CAUSE, HISTORY_CAP_ERROR

PINNED_MOTO_VERSION = "5.2.5"

_PARSER = "moto.stepfunctions.parser"
_LAMBDA_UTILS = f"{_PARSER}.asl.component.state.exec.state_task.lambda_eval_utils"
_WAIT_FUNCTION = f"{_PARSER}.asl.component.state.wait.wait_function.wait_function"
_RETRIER = f"{_PARSER}.asl.component.common.retry.retrier_decl"
_CALLBACK = f"{_PARSER}.asl.component.state.exec.state_task.service.state_task_service_callback"
_SERVICE = f"{_PARSER}.asl.component.state.exec.state_task.service.state_task_service"
_EVENTS = f"{_PARSER}.asl.eval.event.event_manager"
_ENVIRONMENT = f"{_PARSER}.asl.eval.environment"
_WORKER = f"{_PARSER}.backend.execution_worker"
_ERROR_EQUALS = f"{_PARSER}.asl.component.common.error_name.error_equals_decl"
_CALLBACKS = f"{_PARSER}.asl.eval.callback.callback"
_BRANCHES = f"{_PARSER}.asl.component.state.exec.state_parallel.branches_decl"
_ITERATION = f"{_PARSER}.asl.component.state.exec.state_map.iteration.iteration_worker"

# (module, attribute) pairs this seam replaces or reads.
PATCHED = (
    (_LAMBDA_UTILS, "_invoke_lambda_function"),
    (_WAIT_FUNCTION, "WaitFunction"),
    (_RETRIER, "time"),
    (_CALLBACK, "StateTaskServiceCallback"),
    (_SERVICE, "StateTaskService"),
    (_EVENTS, "EventManager"),
    (_ENVIRONMENT, "Environment"),
    (_WORKER, "ExecutionWorker"),
    (_ERROR_EQUALS, "ErrorEqualsDecl"),
    (_CALLBACKS, "HeartbeatEndpoint"),
    (_BRANCHES, "CustomErrorName"),
    (_ITERATION, "CustomErrorName"),
)
# (module, class, method) triples this seam replaces.
PATCHED_METHODS = (
    (_WAIT_FUNCTION, "WaitFunction", "_wait_interval"),
    (_CALLBACK, "StateTaskServiceCallback", "_eval_wait_for_task_token"),
    (_CALLBACK, "StateTaskServiceCallback", "_from_error"),
    (_SERVICE, "StateTaskService", "_before_eval_execution"),
    (_SERVICE, "StateTaskService", "_verify_size_quota"),
    (_EVENTS, "EventManager", "add_event"),
    (_ENVIRONMENT, "Environment", "set_error"),
    (_WORKER, "ExecutionWorker", "_get_evaluation_environment"),
    (_ERROR_EQUALS, "ErrorEqualsDecl", "_eval_body"),
)

InvokeFn = Callable[[str, Any], dict[str, Any]]
"""(function name or ARN, payload) → a Lambda Invoke response: {"StatusCode", "Payload", ["FunctionError"]}."""


class SeamBrokenError(RuntimeError):
    """moto's internals no longer look like this seam expects: pin moto back or update the seam."""


class HistoryCapError(RuntimeError):
    """Raised inside the interpreter when the execution reaches the history quota: nothing after it runs."""


def check() -> None:
    if moto.__version__ != PINNED_MOTO_VERSION:
        raise SeamBrokenError(
            f"moto {moto.__version__} is installed; the rehearsal seam is written for {PINNED_MOTO_VERSION}"
        )
    for module_name, attribute in PATCHED:
        if not hasattr(importlib.import_module(module_name), attribute):
            raise SeamBrokenError(f"{module_name}.{attribute} is gone: the rehearsal seam must be updated")
    for module_name, class_name, method in PATCHED_METHODS:
        if method not in vars(getattr(importlib.import_module(module_name), class_name)):  # its own, not inherited
            raise SeamBrokenError(f"{module_name}.{class_name}.{method} is gone: the rehearsal seam must be updated")
    callbacks = importlib.import_module(_CALLBACKS)
    heartbeat = callbacks.HeartbeatEndpoint(heartbeat_seconds=1)
    for attribute in ("_heartbeat_seconds", "_next_heartbeat_event"):
        if not hasattr(heartbeat, attribute):
            raise SeamBrokenError(f"{_CALLBACKS}.HeartbeatEndpoint.{attribute} is gone: the seam must be updated")
    if not hasattr(importlib.import_module(_EVENTS).EventManager(), "_event_id_gen"):
        raise SeamBrokenError(f"{_EVENTS}.EventManager._event_id_gen is gone: the seam must be updated")


@contextlib.contextmanager
def install(
    invoke: InvokeFn,
    advance: Callable[[float], None],
    take_timeout: Callable[[], bool] = lambda: False,
    *,
    now: Callable[[], float] | None = None,
    history_cap: int = HISTORY_CAP,
) -> Iterator[None]:
    """Patch moto's interpreter for the duration of the block; restore everything afterwards.

    `take_timeout()` answers True (once per expected timeout) when a task token will not be answered.
    `now()` is the simulated clock (seconds): with it, an answer that comes after its task's simulated
    deadline is too late, as on AWS; without it only unanswered tokens time out. `history_cap` is the
    history quota (tests lower it)."""
    check()
    lambda_utils = importlib.import_module(_LAMBDA_UTILS)
    wait_function = importlib.import_module(_WAIT_FUNCTION).WaitFunction
    retrier = importlib.import_module(_RETRIER)
    callback_task = importlib.import_module(_CALLBACK).StateTaskServiceCallback
    service_task = importlib.import_module(_SERVICE).StateTaskService
    event_manager = importlib.import_module(_EVENTS).EventManager
    environment = importlib.import_module(_ENVIRONMENT).Environment
    worker = importlib.import_module(_WORKER).ExecutionWorker
    error_equals = importlib.import_module(_ERROR_EQUALS).ErrorEqualsDecl
    moto_parts = _MotoParts()

    def invoke_lambda_function(parameters: dict[str, Any], region: str, state_credentials: Any) -> dict[str, Any]:
        return invoke(parameters["FunctionName"], parameters.get("Payload"))

    def wait_interval(self: Any, env: Any, wait_seconds: int) -> None:
        advance(float(wait_seconds))

    task_clock = clock.TaskClock(now)  # when each task started: its deadlines count from there

    def eval_wait_for_task_token(
        self: Any, env: Any, timeout_seconds: int, callback_endpoint: Any, heartbeat_endpoint: Any
    ) -> Any:
        # Polled in real time, judged on simulated time (rehearsal.clock.TaskDeadlines): the callback's outcome,
        # or the outcome of the deadline the task missed.
        beat = float(heartbeat_endpoint._heartbeat_seconds) if heartbeat_endpoint is not None else None
        deadlines = task_clock.deadlines(env, float(timeout_seconds), beat)
        real_deadline = time.time() + clock.MAX_REAL_WAIT_SECONDS
        while env.is_running():
            outcome = callback_endpoint.get_outcome()
            if outcome is not None:
                missed = deadlines.missed(task_clock.now())
                return outcome if missed is None else moto_parts.missed(missed, callback_endpoint.callback_id)
            if heartbeat_endpoint is not None and heartbeat_endpoint._next_heartbeat_event.is_set():
                heartbeat_endpoint._next_heartbeat_event.clear()
                missed = deadlines.heartbeat(task_clock.now())
                if missed is not None:
                    return moto_parts.missed(missed, callback_endpoint.callback_id)
                real_deadline = time.time() + clock.MAX_REAL_WAIT_SECONDS
            if take_timeout() or time.time() > real_deadline:
                # Nobody will answer: the task ends at whichever deadline comes first, in simulated time.
                missed, seconds = deadlines.unanswered(task_clock.now())
                advance(seconds)
                return moto_parts.missed(missed, callback_endpoint.callback_id)
            callback_endpoint.wait(timeout=clock.TOKEN_POLL_SECONDS)
            if callback_endpoint.get_outcome() is None:
                # An endpoint a previous attempt interrupted answers wait() at once.
                time.sleep(clock.TOKEN_POLL_SECONDS)
        return moto_parts.missed(clock.TIMEOUT, callback_endpoint.callback_id)

    original_from_error = callback_task._from_error

    def from_error(self: Any, env: Any, ex: Exception) -> Any:
        # AWS Step Functions Developer Guide, "Handling errors in Step Functions workflows", error names:
        # States.HeartbeatTimeout is a Task state that sent no heartbeat for longer than its HeartbeatSeconds.
        # SendTaskHeartbeat (API Reference): the history then holds a TaskTimedOut entry for a task using the
        # callback pattern.
        if isinstance(ex, moto_parts.heartbeat_timeout_error):
            return moto_parts.heartbeat_failure(self, env)
        return original_from_error(self, env, ex)

    original_before = service_task._before_eval_execution

    def before_eval_execution(
        self: Any, env: Any, resource_runtime_part: Any, raw_parameters: dict[str, Any], state_credentials: Any
    ) -> None:
        # "Handling errors in Step Functions workflows", States.DataLimitExceeded is reported "when, after
        # Parameters processing, the input of a state is larger than the payload size quota".
        self._verify_size_quota(env=env, value=raw_parameters)
        task_clock.started(env)
        original_before(self, env, resource_runtime_part, raw_parameters, state_credentials)

    history = _HistoryCap(history_cap, moto_parts)
    original_add_event = event_manager.add_event

    def add_event(self: Any, context: Any, event_type: Any, event_details: Any = None, **kwargs: Any) -> int:
        return history.add(original_add_event, self, context, event_type, event_details, **kwargs)

    original_set_error = environment.set_error

    def set_error(self: Any, error: Any) -> None:
        if history.reached(self.event_manager) and moto_parts.is_error(self):
            return  # the history quota's failure is the execution's: nothing that unwinds after it replaces it
        if moto_parts.is_stopped(self):
            return  # stopped is final (ABORTED): the task it interrupted does not fail the execution afterwards
        original_set_error(self, error)

    original_environment = worker._get_evaluation_environment

    def get_evaluation_environment(self: Any) -> Any:
        env = original_environment(self)
        history.root(env.event_manager, env)
        return env

    original_error_equals = error_equals._eval_body

    def error_equals_body(self: Any, env: Any) -> None:
        error_name = env.stack[-1]
        # "Handling errors in Step Functions workflows": "States.ALL ... can't catch the
        # States.DataLimitExceeded terminal error"; States.DataLimitExceeded is "a terminal error that can't
        # be caught by the States.ALL error type". Whether naming it explicitly catches it the page does not
        # say: the safer reading, terminal, is taken; no Retrier or Catcher matches it. Nor does any match
        # once the history quota has failed the execution (the quotas page: "the execution will fail").
        if getattr(error_name, "error_name", None) == DATA_LIMIT_EXCEEDED or history.reached(env.event_manager):
            env.stack.pop()
            env.stack.append(False)
            return
        original_error_equals(self, env)

    branches = importlib.import_module(_BRANCHES)
    iteration = importlib.import_module(_ITERATION)

    replacements = (
        (lambda_utils, "_invoke_lambda_function", invoke_lambda_function),
        # Amazon States Language specification, Parallel and Map states: when a branch or an iteration fails,
        # the state fails with that error (so its own Retry and Catch see the branch's error name).
        (branches, "CustomErrorName", moto_parts.error_name),
        (iteration, "CustomErrorName", moto_parts.error_name),
        (wait_function, "_wait_interval", wait_interval),
        (retrier, "time", clock.SleepAdvances(advance)),  # the `time` module the retrier sees
        (callback_task, "_eval_wait_for_task_token", eval_wait_for_task_token),
        (callback_task, "_from_error", from_error),
        (service_task, "_before_eval_execution", before_eval_execution),
        (event_manager, "add_event", add_event),
        (environment, "set_error", set_error),
        (worker, "_get_evaluation_environment", get_evaluation_environment),
        (error_equals, "_eval_body", error_equals_body),
    )
    with replaced(replacements):
        yield


class _MotoParts:
    """The moto types the replacements build or recognise (imported once, when the seam is installed)."""

    def __init__(self) -> None:
        self._api = api = importlib.import_module(f"{_PARSER}.api")
        self._callbacks = callbacks = importlib.import_module(_CALLBACKS)
        self._failure = importlib.import_module(f"{_PARSER}.asl.component.common.error_name.failure_event")
        self._names = importlib.import_module(f"{_PARSER}.asl.component.common.error_name.states_error_name")
        self._name_types = importlib.import_module(f"{_PARSER}.asl.component.common.error_name.states_error_name_type")
        self._details = importlib.import_module(f"{_PARSER}.asl.eval.event.event_detail")
        program_state = importlib.import_module(f"{_PARSER}.asl.eval.program_state")
        self._program_error = program_state.ProgramError
        self._program_stopped = program_state.ProgramStopped
        self.heartbeat_timeout_error = callbacks.HeartbeatTimeoutError
        self.execution_failed_type = api.HistoryEventType.ExecutionFailed
        self.terminal_events = {
            api.HistoryEventType.ExecutionSucceeded,
            api.HistoryEventType.ExecutionFailed,
            api.HistoryEventType.ExecutionAborted,
            api.HistoryEventType.ExecutionTimedOut,
        }

    def error_name(self, error_name: str | None) -> Any:
        """The error name a failed branch or iteration reports: a States.* name stays one (moto's
        CustomErrorName refuses the prefix, turning the Parallel's or Map's failure into States.Runtime)."""
        custom = importlib.import_module(f"{_PARSER}.asl.component.common.error_name.custom_error_name")
        if error_name is None or not error_name.startswith("States."):
            return custom.CustomErrorName(error_name=error_name)
        try:
            return self._names.StatesErrorName.from_name(error_name)
        except ValueError:  # a States.* name moto does not know: kept as it is, never turned into another
            name = custom.CustomErrorName.__new__(custom.CustomErrorName)
            importlib.import_module(f"{_PARSER}.asl.component.common.error_name.error_name").ErrorName.__init__(
                name, error_name=error_name
            )
            return name

    def missed(self, error: str, callback_id: str) -> Any:
        """A token wait's outcome when its task missed a deadline: HeartbeatTimedOut or CallbackOutcomeTimedOut."""
        if error == clock.HEARTBEAT_TIMEOUT:
            return self._callbacks.HeartbeatTimedOut()
        return self._callbacks.CallbackOutcomeTimedOut(callback_id=callback_id)

    def heartbeat_failure(self, task: Any, env: Any) -> Any:
        error = self._name_types.StatesErrorNameType.StatesHeartbeatTimeout
        return self._failure.FailureEvent(
            env=env,
            error_name=self._names.StatesErrorName(typ=error),
            event_type=self._api.HistoryEventType.TaskTimedOut,
            event_details=self._details.EventDetails(
                taskTimedOutEventDetails=self._api.TaskTimedOutEventDetails(
                    resourceType=task._get_sfn_resource_type(),
                    resource=task._get_sfn_resource(),
                    error=error.to_name(),
                )
            ),
        )

    def execution_failed(self, error: str, cause: str) -> tuple[Any, Any]:
        failed = self._api.ExecutionFailedEventDetails(error=error, cause=cause)
        return failed, self._details.EventDetails(executionFailedEventDetails=failed)

    def is_error(self, env: Any) -> bool:
        return isinstance(env._program_state, self._program_error)

    def is_stopped(self, env: Any) -> bool:
        return isinstance(env._program_state, self._program_stopped)


class _HistoryCap:
    """The history quota: the event that would be number `cap` is the execution's failure instead."""

    def __init__(self, cap: int, parts: _MotoParts) -> None:
        self._cap = cap
        self._cause = HISTORY_CAP_CAUSE.format(cap=cap)
        self._parts = parts
        self._lock = threading.RLock()
        self._reached: set[int] = set()  # id() of the event managers whose execution reached the cap
        self._roots: dict[int, Any] = {}  # id(event manager) → the execution's root environment

    def root(self, manager: Any, env: Any) -> None:
        self._roots[id(manager)] = env

    def reached(self, manager: Any) -> bool:
        return id(manager) in self._reached

    def add(
        self, original: Callable[..., int], manager: Any, context: Any, event_type: Any, details: Any, **kwargs: Any
    ) -> int:
        with self._lock:
            if id(manager) in self._reached:
                return int(manager._event_id_gen._next_id) - 1  # the execution has failed: nothing more is recorded
            if manager._event_id_gen._next_id < self._cap:
                return original(manager, context, event_type, details, **kwargs)
            failed, failed_details = self._parts.execution_failed(HISTORY_CAP_ERROR, self._cause)
            event_id = original(manager, context, self._parts.execution_failed_type, failed_details)
            self._reached.add(id(manager))
            root = self._roots.get(id(manager))
        if root is not None:
            root.set_error(failed)  # every frame of the execution stops running
        if event_type in self._parts.terminal_events:
            return event_id  # the execution was ending anyway: its last event is the quota's failure
        raise HistoryCapError(self._cause)
