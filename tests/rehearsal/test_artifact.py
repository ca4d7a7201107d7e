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


def test_every_functions_variables_besides_deploy_config_fit_the_room_synth_leaves_them(
    example: artifacts.Artifact,
) -> None:
    # Given every function's environment as deployed (intrinsics resolved to the names and ARNs the stack makes)
    from stacks.bounds import LAMBDA_ENVIRONMENT_BYTES, OTHER_VARIABLES_BYTES

    resolver = Resolver(example, Account())
    sizes = {}
    for logical_id, function in example.functions.items():
        variables = {k: str(resolver.resolve(v, k)) for k, v in function.environment.items()}
        others = {k: v for k, v in variables.items() if k != "DEPLOY_CONFIG"}
        sizes[logical_id] = (len(json.dumps(others).encode()), len(json.dumps(variables).encode()))
    # Then the largest share of the other variables stays within what synth reserves for them (with room for a
    # longer stack name, region and account than the emulated ones), and every environment within Lambda's 4 KB
    largest = max(other for other, _ in sizes.values())
    assert largest + 200 <= OTHER_VARIABLES_BYTES, sizes
    assert all(total <= LAMBDA_ENVIRONMENT_BYTES for _, total in sizes.values()), sizes


def test_synth_refuses_a_deploy_configuration_too_large_for_the_functions_environment() -> None:
    # Given the configured file with its first (rolling) stage grown to 9 groups with names of 240 characters
    # (Auto Scaling allows 255; valid in every other respect, the history budget included)
    from stacks.config import ConfigError, load_config, strip_json_comments

    config = json.loads(strip_json_comments(artifacts.configured_file().read_text()))
    config["stages"][0]["targets"] = [
        {"autoScalingGroupName": f"web-app-{i:02d}-" + "x" * 230, "launchTemplateId": f"lt-{i:017x}"} for i in range(9)
    ]
    config["stages"][0]["waveSize"] = 9
    # When synth validates it / Then it is refused, naming the sizes, before anything is deployed
    with pytest.raises(ConfigError, match="bytes as an environment variable, and Lambda allows 4,096"):
        load_config(config)
