"""Every error name the state machine retries or catches is one that can arrive at that state.

Step Functions matches errors by name. A Python Lambda function's error name is its exception's class name, so a
Retry naming an error no code path raises ("ThrottlingException" from EC2, whose botocore model declares no error
shapes, arrives as "ClientError") is dead: it never matches, and the step fails where it should have waited.
Each name in any ErrorEquals, nested Map and Parallel states included, must be one of:
- a `States.*` name of "Handling errors in Step Functions workflows" (Step Functions Developer Guide,
  https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html);
- on a Lambda task, a `Lambda.*` name of "Handle Lambda service exceptions"
  (https://docs.aws.amazon.com/step-functions/latest/dg/bp-lambda-serviceexception.html), or the name of an
  exception class of lambdas/shared/errors.py that the task's function can raise: raised (or built) in a module
  its handler imports, directly or through other modules under lambdas/;
- on an SNS Publish task, `SNS.<error>`: the errors the SNS API Reference lists for Publish (botocore's sns model),
  named the way Step Functions names a service's errors, ServiceName.ErrorName with the Exception suffix
  ("Learning to use AWS service SDK integrations in Step Functions":
  https://docs.aws.amazon.com/step-functions/latest/dg/supported-services-awssdk.html), and `SNS.SdkClientException`,
  the SDK's client-side failure, named as the Lambda page names Lambda's (`Lambda.SdkClientException`).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import botocore.session
import pytest

from shared import errors as deploy_errors_module
from stacks.deploy_workflow import ASL_FILE
from stacks.steps import BY_PLACEHOLDER
from tests.infra.test_asl import all_states

LAMBDAS = ASL_FILE.parent.parent / "lambdas"
ERRORS_MODULE = LAMBDAS / "shared" / "errors.py"

# "Handling errors in Step Functions workflows", Error names.
STATES_ERRORS = frozenset(
    {
        "States.ALL",
        "States.BranchFailed",
        "States.DataLimitExceeded",
        "States.ExceedToleratedFailureThreshold",
        "States.HeartbeatTimeout",
        "States.Http.Socket",
        "States.IntrinsicFailure",
        "States.ItemReaderFailed",
        "States.NoChoiceMatched",
        "States.ParameterPathFailure",
        "States.Permissions",
        "States.QueryEvaluationError",
        "States.ResultPathMatchFailure",
        "States.ResultWriterFailed",
        "States.Runtime",
        "States.TaskFailed",
        "States.Timeout",
    }
)
# "Handle Lambda service exceptions": the names a Lambda task reports for the Lambda service's own failures.
LAMBDA_ERRORS = frozenset(
    {
        "Lambda.ClientExecutionTimeoutException",
        "Lambda.ServiceException",
        "Lambda.AWSLambdaException",
        "Lambda.SdkClientException",
        "Lambda.TooManyRequestsException",
        "Lambda.Unknown",
    }
)
# Names in the ASL now that cannot arrive, each reported to the ASL's owner: SNS Publish lists no
# ThrottledException (its code "Throttled" belongs to the SMS actions). Delete an entry once the ASL drops it
# (test_every_known_dead_name_is_still_in_the_asl says when).
# Names known to be dead, each with why, until the ASL drops them (none today: SNS.ThrottledException, which the SNS
# API Reference lists for the SMS actions only, was replaced by States.TaskFailed).
KNOWN_DEAD: dict[str, str] = {}
_PLACEHOLDER = re.compile(r"^\$\{([A-Za-z0-9_]+)\}$")


def named_errors() -> list[tuple[str, str, dict[str, Any]]]:
    """(error name, state name, state) for every name of every Retry and Catch in the definition."""
    definition = json.loads(ASL_FILE.read_text())
    return [
        (error, name, state)
        for name, state in all_states(definition["States"])
        for handler in [*state.get("Retry", []), *state.get("Catch", [])]
        for error in handler["ErrorEquals"]
    ]


def integration(state: dict[str, Any]) -> str:
    """ "lambda", "sns" or the Resource itself, from a Task's Resource (any integration pattern)."""
    resource = str(state.get("Resource", ""))
    for prefix, kind in (("arn:aws:states:::lambda:invoke", "lambda"), ("arn:aws:states:::sns:publish", "sns")):
        if resource.startswith(prefix):
            return kind
    return resource


def step_of(state: dict[str, Any]) -> str:
    """The step whose function a Lambda task invokes: its FunctionName placeholder is `${<Step>FunctionArn}`."""
    function_name = str(state["Parameters"]["FunctionName"])
    match = _PLACEHOLDER.match(function_name)
    assert match, f"FunctionName {function_name!r} is not a step placeholder"
    assert match.group(1) in BY_PLACEHOLDER, f"{function_name} names no step of stacks.steps.STEPS"
    return BY_PLACEHOLDER[match.group(1)].folder


def _module_file(module: str) -> Path | None:
    """lambdas/a/b.py or lambdas/a/b/__init__.py for "a.b"; None for a module outside lambdas/."""
    base = LAMBDAS.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(tree: ast.AST) -> Iterator[str]:
    for node in ast.walk(tree):  # lazy imports inside functions included
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)  # `from pkg import module`


@cache
def reachable_modules(step: str) -> frozenset[Path]:
    """Every module under lambdas/ the step's handler imports, directly or through other modules there."""
    start = _module_file(f"{step}.handler")
    assert start is not None, f"no lambdas/{step}/handler.py"
    seen: set[Path] = set()
    todo = [start]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for module in _imports(ast.parse(path.read_text())):
            found = _module_file(module)
            if found is not None and found not in seen:
                todo.append(found)
    return frozenset(seen)


def raised_names(path: Path) -> set[str]:
    """Names a module raises (`raise Name(...)`, `raise Name`) or builds (`Name(...)`, e.g. returned to a raise)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        target = node.exc if isinstance(node, ast.Raise) else node.func if isinstance(node, ast.Call) else None
        if isinstance(target, ast.Call):
            target = target.func
        if isinstance(target, ast.Name):
            names.add(target.id)
        elif isinstance(target, ast.Attribute):
            names.add(target.attr)
    return names


@cache
def deploy_errors() -> frozenset[str]:
    """The exception classes of lambdas/shared/errors.py: DeployError's subclasses defined there."""
    return frozenset(
        name
        for name, cls in inspect.getmembers(deploy_errors_module, inspect.isclass)
        if issubclass(cls, deploy_errors_module.DeployError)
        and cls is not deploy_errors_module.DeployError
        and cls.__module__ == deploy_errors_module.__name__
    )


@cache
def sns_publish_errors() -> frozenset[str]:
    shapes = botocore.session.get_session().get_service_model("sns").operation_model("Publish").error_shapes
    names = {s.name if s.name.endswith("Exception") else f"{s.name}Exception" for s in shapes}
    return frozenset({f"SNS.{n}" for n in names} | {"SNS.SdkClientException"})


def why_it_cannot_arrive(error: str, state: dict[str, Any]) -> str | None:
    """None when the error can arrive at this state, else why not."""
    if error in STATES_ERRORS:
        return None
    if error.startswith("States."):
        return "not a States error name the Step Functions docs define"
    # A task waiting for its token fails with whatever error the SendTaskFailure names: the approval command's.
    # (Imported by name: task_tokens is Lambda code, checked by the other mypy pass under its own identity.)
    rejected = importlib.import_module("shared.aws.task_tokens").REJECTED
    if state.get("Resource", "").endswith(".waitForTaskToken") and error == rejected:
        return None if "approval" in json.dumps(state.get("Parameters", {})) else "only an approval is rejected"
    # ... and the lock step's: a queued push superseded by a newer one (lambdas/lock SendTaskFailure).
    superseded = importlib.import_module("lock.logic").SUPERSEDED
    if state.get("Resource", "").endswith(".waitForTaskToken") and error == superseded:
        return None if '"enqueue"' in json.dumps(state.get("Parameters", {})) else "only a queued push is superseded"
    kind = integration(state)
    if kind == "sns":
        return None if error in sns_publish_errors() else "not an error SNS Publish returns"
    if kind != "lambda":
        return f"no rule for the errors of {kind!r}: add one before naming them"
    if error.startswith("Lambda."):
        return None if error in LAMBDA_ERRORS else "not a Lambda service error name the Step Functions docs define"
    if error not in deploy_errors():
        return "no exception class of lambdas/shared/errors.py has this name"
    step = step_of(state)
    if not any(error in raised_names(path) for path in reachable_modules(step)):
        return f"nothing the {step} function imports raises it"
    return None


NAMED = named_errors()


@pytest.mark.parametrize(
    ("error", "state_name", "state"),
    [
        pytest.param(
            *entry,
            id=f"{entry[1]}:{entry[0]}",
            marks=[pytest.mark.xfail(strict=True, reason=KNOWN_DEAD[entry[0]])] if entry[0] in KNOWN_DEAD else [],
        )
        for entry in NAMED
    ],
)
def test_every_error_the_state_machine_names_can_arrive_there(error: str, state_name: str, state: dict) -> None:
    # Given a name in a Retry or Catch of the state / Then something can report an error of that name there
    assert why_it_cannot_arrive(error, state) is None, f"{state_name}: {error}: {why_it_cannot_arrive(error, state)}"


def test_every_known_dead_name_is_still_in_the_asl() -> None:
    # Given the names known to be dead / Then each is still named (else its entry goes)
    named = {error for error, _, _ in NAMED}

    assert set(KNOWN_DEAD) <= named


def test_throttling_is_retried_by_the_name_the_functions_raise() -> None:
    # Given every Lambda task of the definition
    lambda_tasks = {name: state for _, name, state in NAMED if integration(state) == "lambda"}
    # Then each one retries Throttled, and no task names the service codes botocore's ClientError hides
    assert lambda_tasks
    for name, state in lambda_tasks.items():
        retried = {error for retry in state.get("Retry", []) for error in retry["ErrorEquals"]}
        assert "Throttled" in retried, name
    named = {error for error, _, _ in NAMED}
    assert named.isdisjoint({"ThrottlingException", "Throttling", "RequestLimitExceeded", "ClientError"})


@pytest.mark.parametrize(
    ("error", "state", "reason"),
    [
        ("ThrottlingException", {"Resource": "arn:aws:states:::lambda:invoke"}, "no exception class"),
        ("States.Throttled", {"Resource": "arn:aws:states:::lambda:invoke"}, "not a States error name"),
        ("Lambda.Throttled", {"Resource": "arn:aws:states:::lambda:invoke"}, "not a Lambda service error name"),
        ("SNS.ThrottlingException", {"Resource": "arn:aws:states:::sns:publish"}, "not an error SNS Publish returns"),
        ("SNS.InternalErrorException", {"Resource": "arn:aws:states:::dynamodb:putItem"}, "no rule for the errors"),
    ],
)
def test_a_dead_name_is_told_apart(error: str, state: dict[str, Any], reason: str) -> None:
    # Given a name nothing can report at that state / Then the rule says why
    assert reason in (why_it_cannot_arrive(error, state) or "")


def test_an_error_no_function_of_the_step_raises_is_dead() -> None:
    # Given a Lambda task of lock, whose function touches neither image builds nor blue-green groups
    state = {"Resource": "arn:aws:states:::lambda:invoke", "Parameters": {"FunctionName": "${LockFunctionArn}"}}
    # Then an error only other steps raise cannot arrive there, and one its adapters raise can
    assert why_it_cannot_arrive("ImageNotReady", state) == "nothing the lock function imports raises it"
    assert why_it_cannot_arrive("Throttled", state) is None


def test_base_image_missing_arrives_where_the_app_bake_starts_and_nowhere_else() -> None:
    # Given the states that invoke start_image_build and check_image_build
    states = json.loads(ASL_FILE.read_text())["States"]
    # Then start_image_build can raise it (a fresh account: no base yet), and only its catch names it
    assert why_it_cannot_arrive("BaseImageMissing", states["StartImageBuild"]) is None
    assert why_it_cannot_arrive("BaseImageMissing", states["CheckImageBuild"]) == (
        "nothing the check_image_build function imports raises it"
    )
    assert {name for error, name, _ in NAMED if error == "BaseImageMissing"} == {"StartImageBuild"}


def raise_statements(path: Path) -> set[str]:
    """Names a module raises: `raise Name(...)`, `raise module.Name(...)`, `raise Name`."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        target = node.exc.func if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) else None
        target = target or (node.exc if isinstance(node, ast.Raise) else None)
        if isinstance(target, ast.Name):
            names.add(target.id)
        elif isinstance(target, ast.Attribute):
            names.add(target.attr)
    return names


def test_every_exception_class_of_the_errors_module_is_raised_somewhere() -> None:
    # Given every module under lambdas/ but the errors module itself
    raised = set().union(*(raise_statements(p) for p in LAMBDAS.rglob("*.py") if p != ERRORS_MODULE))
    # Then each exception class there is raised by some code path: a name the state machine only fails with (a Fail
    # state's Error: DeploymentInProgress, ImageBuildFailed, RefreshFailed) is no exception class
    assert deploy_errors()
    assert sorted(deploy_errors() - raised) == []


def test_a_raise_is_told_apart_from_a_mention(tmp_path: Path) -> None:
    # Given a module that raises one error, catches another and builds a third without raising it
    module = tmp_path / "step.py"
    module.write_text(
        "from shared import errors\n"
        "def run():\n"
        "    try:\n"
        "        raise errors.GroupBusy('busy')\n"
        "    except errors.Throttled:\n"
        "        raise\n"
        "    record = errors.RollbackFailed('kept')\n"
        "    raise InvalidInput\n"
    )
    # Then only the raised ones count
    assert raise_statements(module) == {"GroupBusy", "InvalidInput"}
