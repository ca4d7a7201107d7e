"""The rehearsal runs the artifact: the template's definition, substitutions and function environments."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from rehearsal import artifact as artifacts
from rehearsal.dispatch import RehearsalError
from rehearsal.intrinsics import Account, Resolver
from rehearsal.runner import Target, definition, run
from rehearsal.scenarios import load_scenario

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def example() -> artifacts.Artifact:
    return artifacts.synthesize()


def test_every_placeholder_is_filled_from_the_templates_substitutions(example: artifacts.Artifact) -> None:
    # Given the synthesized template / When its definition is substituted as CloudFormation would
    text = definition(example, Resolver(example, Account()))

    # Then nothing is left and every function ARN in it is one of the template's functions
    assert "${" not in text
    resolver = Resolver(example, Account())
    arns = {resolver.get_att(logical_id, "Arn") for logical_id in example.functions}
    named = {s["Parameters"]["FunctionName"] for s in _tasks(json.loads(text)) if "FunctionName" in s["Parameters"]}
    assert named
    assert named <= arns


def _tasks(node: object) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        if node.get("Type") == "Task" and isinstance(node.get("Parameters"), dict):
            found.append(node)
        for value in node.values():
            found.extend(_tasks(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(_tasks(value))
    return found


def test_a_missing_environment_variable_fails_naming_the_function_and_the_variable(
    example: artifacts.Artifact,
) -> None:
    # Given the template with LOCK_TABLE_NAME removed from the lock function
    template = copy.deepcopy(example.template)
    lock_id = next(k for k, f in example.functions.items() if f.step == "lock")
    del template["Resources"][lock_id]["Properties"]["Environment"]["Variables"]["LOCK_TABLE_NAME"]
    broken = dataclasses.replace(example, template=template, functions=artifacts.functions_of(template))

    # When it is rehearsed / Then the cold start fails, naming both
    with pytest.raises(RehearsalError, match=rf"{lock_id}.*LOCK_TABLE_NAME"):
        run(load_scenario("push-deploys-every-stage"), artifact=broken)


def test_a_synthesized_cloud_assembly_is_rehearsed_without_synthesizing(example: artifacts.Artifact) -> None:
    # Given the cloud assembly folder of a synthesis / When it is rehearsed by --template
    result = run(load_scenario("deploy-image-one-target"), Target(template=example.template_path.parent))

    # Then it runs, with the configuration the template holds
    assert result.status == "SUCCEEDED"
    assert result.invariant_violations == []
    assert [t["autoScalingGroupName"] for t in result.targets] == [
        t["autoScalingGroupName"] for s in example.deploy_config["stages"] for t in s["targets"]
    ]


def test_neither_rehearsal_nor_benchmarks_keep_a_copy_of_the_stacks_substitutions_or_environment() -> None:
    # The names the stack gives its placeholders and variables appear nowhere in rehearsal/ or benchmarks/
    # (both read them from the template): a second copy would drift. The benchmark's baseline ASL names the
    # stack's function placeholders ("${CheckRefreshFunctionArn}"), which the rehearsal fills from the
    # template's substitutions and refuses to run if one is missing: that is a use, not a copy.
    names = ["PollIntervalSeconds", "RefreshFallbackSeconds", "ImageMaxChecks", "LockMaxAttempts", "LockPollSeconds",
             "LOCK_TABLE_NAME", "LOCK_TTL_SECONDS", "WAIT_TTL_SECONDS", "BUILD_SOURCE_PARAMETER", "PIPELINE_ARN",
             "WEBHOOK_SECRET_ARN", "STATE_MACHINE_ARN"]  # fmt: skip
    for folder, extra in (("rehearsal", ["FunctionArn"]), ("benchmarks", [])):
        for path in (PROJECT_ROOT / folder).rglob("*.py"):
            text = path.read_text()
            assert not [n for n in [*names, *extra] if n in text], path


def test_a_roles_policies_include_the_stacks_managed_policies_and_refuse_what_is_not_in_the_template(
    example: artifacts.Artifact,
) -> None:
    # Given the lock function's role with an overflow managed policy of the stack (as CDK makes for long roles)
    role = next(f.role for f in example.functions.values() if f.step == "lock")
    template = copy.deepcopy(example.template)
    overflow = {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*"}]}
    template["Resources"]["Overflow"] = {
        "Type": "AWS::IAM::ManagedPolicy",
        "Properties": {"PolicyDocument": overflow, "Roles": [{"Ref": role}]},
    }
    # When its policies are read / Then the overflow's document is among them
    assert dataclasses.replace(example, template=template).role_policies(role)["Overflow"] == overflow

    # Given a managed policy from outside the stack, or a permissions boundary / Then the role is refused
    for key, value in (("ManagedPolicyArns", ["arn:aws:iam::aws:policy/ReadOnlyAccess"]), ("PermissionsBoundary", "x")):
        refused = copy.deepcopy(example.template)
        refused["Resources"][role]["Properties"][key] = value
        with pytest.raises(artifacts.ArtifactError, match=role):
            dataclasses.replace(example, template=refused).role_policies(role)
