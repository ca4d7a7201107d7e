"""Every execution-input example in the README passes the state machine's own first-state checks."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import pytest
from validate_request.logic import check_request, parse_request

from shared.config import DeployConfig

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_examples() -> list[str]:
    section = README.read_text().split("## Triggers and manual runs", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```json\n(.*?)\n```", section, flags=re.DOTALL)


def example_deploy_config() -> DeployConfig:
    """The deploy part of config/example.jsonc, as cdk synth validates it (imported lazily: CDK-side module)."""
    stacks_config = importlib.import_module("stacks.config")
    pipeline = stacks_config.load_config("config/example.jsonc")
    return DeployConfig.model_validate_json(pipeline.deploy_config_json())


def test_readme_documents_every_action() -> None:
    actions = {json.loads(example)["action"] for example in readme_examples()}

    assert actions == {"deploy", "deploy-image", "rollback", "rebuild-base"}


@pytest.mark.parametrize("example", readme_examples())
def test_readme_example_passes_request_validation(example: str) -> None:
    # Given an example from the README / When the first state's checks run / Then it is accepted
    request = parse_request(json.loads(example))

    stages = check_request(request, example_deploy_config())

    assert stages
