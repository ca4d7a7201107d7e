"""stacks/steps.py, the one table of steps: its placeholders are the ASL's, its folders are lambdas/', and the
environment each function gets is the one its handler validates."""

from __future__ import annotations

import ast
import importlib
import json
import re

import pytest
from pydantic import BaseModel

from stacks.deploy_workflow import ASL_FILE
from stacks.steps import STEPS, Step
from tests.infra.conftest import Synthesized
from tests.infra.test_asl import all_states

LAMBDAS = ASL_FILE.parent.parent / "lambdas"
PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")
# Set on every function: by stacks/lambda_function.py (POWERTOOLS_*) and the workflow (DEPLOY_CONFIG).
COMMON = {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "POWERTOOLS_LOG_LEVEL", "DEPLOY_CONFIG"}
# Defined by the Lambda runtime itself, never by the stack.
RUNTIME_DEFINED = {"AWS_REGION", "AWS_DEFAULT_REGION"}


def function_placeholders() -> set[str]:
    """Every ASL placeholder that names a function: a Lambda task's FunctionName, or any `${...FunctionArn}`."""
    definition = json.loads(ASL_FILE.read_text())
    names = {
        name
        for _, state in all_states(definition["States"])
        if str(state.get("Resource", "")).startswith("arn:aws:states:::lambda:invoke")
        for name in PLACEHOLDER.findall(str(state["Parameters"]["FunctionName"]))
    }
    return names | {name for name in PLACEHOLDER.findall(ASL_FILE.read_text()) if name.endswith("FunctionArn")}


def test_every_function_placeholder_of_the_asl_is_one_steps_placeholder_literally() -> None:
    placeholders = [step.placeholder for step in STEPS if step.placeholder]

    assert len(placeholders) == len(set(placeholders))
    assert function_placeholders() == set(placeholders)


def test_only_the_eventbridge_steps_have_no_placeholder() -> None:
    assert {s.folder for s in STEPS if s.placeholder is None} == {s.folder for s in STEPS if s.eventbridge}
    with pytest.raises(ValueError, match="placeholder"):
        Step(folder="x", handler="x.handler.lambda_handler", placeholder=None, timeout_seconds=1, grant=STEPS[0].grant)


@pytest.mark.parametrize("step", STEPS, ids=lambda s: s.folder)
def test_every_steps_folder_holds_its_handler_module(step: Step) -> None:
    module, function = step.handler.rsplit(".", 1)
    path = LAMBDAS.joinpath(*module.split(".")).with_suffix(".py")

    assert module.split(".")[0] == step.folder
    assert path.is_file(), f"{step.folder}: {path} does not exist"
    defined = {n.name for n in ast.parse(path.read_text()).body if isinstance(n, ast.FunctionDef)}
    assert function in defined, f"{step.handler}: {path} defines no {function}"


def model_variables(step: Step) -> set[str]:
    """The variables the step's environment model reads (its field aliases), none when it has no model."""
    if step.environment_model is None:
        return set()
    module, name = step.environment_model.rsplit(".", 1)
    model = getattr(importlib.import_module(module), name)
    assert issubclass(model, BaseModel)
    return {field.alias or field_name for field_name, field in model.model_fields.items()}


@pytest.mark.parametrize("step", STEPS, ids=lambda s: s.folder)
def test_each_function_gets_exactly_the_environment_its_handler_validates(synthesized: Synthesized, step: Step) -> None:
    functions = [f["Properties"] for f in synthesized.resources("AWS::Lambda::Function").values()]
    (fn,) = [f for f in functions if f["Handler"] == step.handler]

    variables = set(fn["Environment"]["Variables"])
    assert variables - COMMON == model_variables(step) - RUNTIME_DEFINED
    assert variables >= COMMON
