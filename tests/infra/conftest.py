"""Synthesize the real app (app.build_app) in-process, once per configuration variant.

cdk-nag runs as a validation plugin during `app.synth()`: an unacknowledged finding raises, so
every fixture here doubles as a nag check of its variant.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from app import build_app
from stacks.config import PROJECT_ROOT, load_config, strip_json_comments
from stacks.pipeline_stack import PipelineStack

EXAMPLE_CONFIG_FILE = PROJECT_ROOT / "config" / "example.jsonc"


def example_config() -> dict[str, Any]:
    return json.loads(strip_json_comments(EXAMPLE_CONFIG_FILE.read_text()))


@dataclass
class Synthesized:
    stack: PipelineStack
    template: Template
    template_path: Path
    assembly_dir: Path

    @property
    def json(self) -> dict[str, Any]:
        return dict(self.template.to_json())

    def resources(self, type_name: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.json["Resources"].items() if v["Type"] == type_name}


def synthesize(raw_config: dict[str, Any], outdir: Path) -> Synthesized:
    app = cdk.App(outdir=str(outdir))
    stack = build_app(app, load_config(raw_config))
    assembly = app.synth()
    template_path = Path(assembly.get_stack_artifact(stack.artifact_id).template_full_path)
    return Synthesized(stack, Template.from_stack(stack), template_path, Path(assembly.directory))


def variant(**overrides: Any) -> dict[str, Any]:
    config = copy.deepcopy(example_config())
    config.update(overrides)
    return config


GITHUB_SOURCE = {"type": "github", "repository": "acme/web-app", "branch": "release"}


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """The example configuration (CodeCommit source, daily schedule, two stages)."""
    return synthesize(example_config(), tmp_path_factory.mktemp("cdk-example"))


@pytest.fixture(scope="session")
def synthesized_github(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """GitHub source, Ansible playbook, logs bucket, no schedule, an instance role to pass."""
    config = variant(
        source=GITHUB_SOURCE,
        passRoleArns=["arn:aws:iam::123456789012:role/web-app-instance"],
        build={**example_config()["build"], "logsBucket": "acme-build-logs"},
    )
    config["baseImage"] = {**config["baseImage"], "schedule": None, "ansiblePlaybook": "s3://acme-playbooks/site.yml"}
    return synthesize(config, tmp_path_factory.mktemp("cdk-github"))


@pytest.fixture(scope="session")
def synthesized_fleet(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """The optional example fleet switched on, and no source (manual runs only)."""
    config = variant(exampleFleet={"enabled": True})
    config.pop("source")
    return synthesize(config, tmp_path_factory.mktemp("cdk-fleet"))


@pytest.fixture(scope="session")
def synthesized_github_fleet(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """GitHub source (the public webhook) with the example fleet (load balancer, group, alarms)."""
    config = variant(source=GITHUB_SOURCE, exampleFleet={"enabled": True})
    return synthesize(config, tmp_path_factory.mktemp("cdk-github-fleet"))
