"""The deployed Powertools layer is the release the tests run, named by Powertools' public SSM parameter."""

from __future__ import annotations

import importlib.metadata
import json
import re
from pathlib import Path

import pytest

from stacks.config import PROJECT_ROOT
from stacks.lambda_function import POWERTOOLS_REQUIREMENTS, pinned_powertools_version
from tests.infra.conftest import Synthesized

DYNAMIC_REFERENCE = re.compile(r"^\{\{resolve:ssm:/aws/service/powertools/python/([^/]+)/([^/]+)/([^/}]+)\}\}$")


def test_the_tests_run_the_pinned_powertools_release() -> None:
    # The installed package is what every unit test, the rehearsal and the benchmark import
    assert importlib.metadata.version("aws-lambda-powertools") == pinned_powertools_version()


def test_every_function_gets_the_layer_of_the_tested_release_for_its_own_runtime_and_architecture(
    synthesized: Synthesized,
) -> None:
    tested = importlib.metadata.version("aws-lambda-powertools")
    functions = synthesized.resources("AWS::Lambda::Function")
    assert functions

    for name, function in functions.items():
        properties = function["Properties"]
        layers = properties["Layers"]
        # One layer, an SSM dynamic reference: /aws/service/powertools/python/<arch>/<runtime>/<version>
        assert len(layers) == 1, name
        match = DYNAMIC_REFERENCE.fullmatch(layers[0])
        assert match, f"{name}: {layers[0]!r} is not the Powertools SSM parameter"
        arch, runtime, version = match.groups()
        assert version == tested, name  # exactly the pinned release, never `latest`
        assert [arch] == properties["Architectures"], name
        assert runtime == properties["Runtime"], name  # python3.14: the parameter keeps the period


def test_the_layer_is_resolved_by_cloudformation_not_given_as_a_template_parameter(synthesized: Synthesized) -> None:
    # A dynamic reference needs no value from whoever deploys (nor from the rehearsal, which reads the template)
    assert set(synthesized.json.get("Parameters", {})) <= {"BootstrapVersion"}


def test_no_hand_picked_layer_number_remains(synthesized: Synthesized) -> None:
    template = json.dumps(synthesized.json)
    assert "AWSLambdaPowertools" not in template
    assert not re.search(r"arn:[^\"]*:lambda:[^\"]*:layer:", template)
    for path in [
        PROJECT_ROOT / "cdk.json",
        PROJECT_ROOT / "README.md",
        *sorted((PROJECT_ROOT / "config").glob("*.json*")),
        *sorted((PROJECT_ROOT / "tests" / "rehearsal" / "configs").glob("*.json*")),
    ]:
        assert "powertoolsLayerVersion" not in path.read_text(encoding="utf-8"), path


@pytest.mark.parametrize(
    ("line", "version"),
    [
        ("aws-lambda-powertools[parser]==3.37.0", "3.37.0"),
        ("aws-lambda-powertools==3.4.1  # the layer follows this pin", "3.4.1"),
        ("aws-lambda-powertools[parser,tracer]==3.10.0", "3.10.0"),
    ],
)
def test_the_pin_is_read_from_the_requirements_line(tmp_path: Path, line: str, version: str) -> None:
    requirements = tmp_path / "requirements-dev.txt"
    requirements.write_text(f"-r requirements.txt\nboto3==1.44.5\n{line}\npytest==9.2.0\n")

    assert pinned_powertools_version(requirements) == version


@pytest.mark.parametrize(
    "lines",
    [
        "boto3==1.44.5\n",  # no pin
        "aws-lambda-powertools>=3.0\n",  # a range names no release
        "aws-lambda-powertools==3.37.0\naws-lambda-powertools[parser]==3.38.0\n",  # two pins
    ],
)
def test_synth_refuses_requirements_that_do_not_name_one_release(tmp_path: Path, lines: str) -> None:
    requirements = tmp_path / "requirements-dev.txt"
    requirements.write_text(lines)

    with pytest.raises(RuntimeError, match="must pin aws-lambda-powertools exactly once"):
        pinned_powertools_version(requirements)


def test_the_pin_comes_from_the_requirements_the_tests_install() -> None:
    assert POWERTOOLS_REQUIREMENTS == PROJECT_ROOT / "requirements-dev.txt"
    # lambdas/requirements.txt installs nothing: Powertools reaches the functions only as the layer
    functions_requirements = (PROJECT_ROOT / "lambdas" / "requirements.txt").read_text(encoding="utf-8")
    assert not re.search(r"^aws-lambda-powertools", functions_requirements, re.MULTILINE)
