"""The IAM contract notices every permission: removing any single action that a step was observed using,
from that step's role in the synthesized template, makes a scenario fail with that call in `accessDenied`.

Every observed action is checked by re-evaluating, against the mutated template, the very authorization
requests the scenario made with it: a rehearsal is the same call for call up to the first use of the
removed action (nothing before it used that action), so the first of them is what the re-run would be
denied. For one action of every role the scenario is also re-run in full, to show the denial end to end:
the step fails the way AWS fails it, the denial is listed, and the scenario fails.
"""

from __future__ import annotations

import copy
import dataclasses
import fnmatch
from functools import cache
from typing import Any

import pytest

from rehearsal import artifact as artifacts
from rehearsal.contract import role_policies
from rehearsal.iam.policy import evaluate
from rehearsal.intrinsics import Account, Resolver
from rehearsal.runner import run
from rehearsal.scenarios import load_scenario

# Together these make every step of the example configuration call what it calls: a push through both
# strategies, a failed refresh and its rollback, a blue-green rollback, a shift undone, the base chain,
# the fallback poll after a lost event.
SCENARIOS = (
    "push-deploys-every-stage",
    "refresh-failed",
    "blue-green-shift-fails-midway",
    "blue-green-rollback-to-retained",
    "rebuild-base-chain",
    "refresh-event-lost",
)
RERUN_SHARDS = 3


@cache
def example() -> artifacts.Artifact:
    return artifacts.synthesize()


@cache
def baseline() -> dict[tuple[str, str], tuple[str, list[Any]]]:
    """(role, action) → (the first scenario observed using it, every request it was allowed with action)."""
    first: dict[tuple[str, str], tuple[str, list[Any]]] = {}
    for name in SCENARIOS:
        result = run(load_scenario(name), artifact=example())
        assert result.access_denied == [], name
        assert result.invariant_violations == [], name
        mine: dict[tuple[str, str], list[Any]] = {}
        for role, request in result.authorizations:
            mine.setdefault((role, request.action), []).append(request)
        for key, requests in mine.items():
            first.setdefault(key, (name, requests))
    return first


def without(artifact: artifacts.Artifact, role: str, action: str) -> artifacts.Artifact:
    """The artifact with `action` (and any wildcard that grants it) removed from every policy of `role`."""
    template = copy.deepcopy(artifact.template)
    for resource in template["Resources"].values():
        if resource["Type"] != "AWS::IAM::Policy" or {"Ref": role} not in resource["Properties"].get("Roles", []):
            continue
        document = resource["Properties"]["PolicyDocument"]
        kept = []
        for statement in document["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            left = [a for a in actions if not fnmatch.fnmatchcase(action.lower(), a.lower())]
            if left:
                kept.append({**statement, "Action": left})
        document["Statement"] = kept
    return dataclasses.replace(artifact, template=template)


def test_the_scenarios_observe_every_role_the_workflow_uses() -> None:
    # The state machine's role and every step function's role are seen calling something
    roles = {role for role, _ in baseline()}
    state_machine_role = example().resources[example().state_machine]["Properties"]["RoleArn"]["Fn::GetAtt"][0]
    assert state_machine_role in roles
    assert {f.role for f in example().functions.values()} <= roles


def test_removing_any_observed_action_denies_the_first_call_that_used_it() -> None:
    missed = []
    for (role, action), (name, requests) in sorted(baseline().items()):
        # Given the template without that one action on that one role
        mutated = without(example(), role, action)
        policies = role_policies(mutated, Resolver(mutated, Account()), role)

        # When the first request the scenario made with it is evaluated again / Then IAM denies it
        if evaluate(policies, requests[0]).decision == "Allow":
            missed.append((role, action, name))
    assert missed == []


def reruns() -> list[tuple[str, str, str]]:
    """One action per role, a mutating one where the role has any, with the scenario that used it."""
    chosen: dict[str, tuple[str, str, str]] = {}
    for (role, action), (name, _) in sorted(baseline().items()):
        mutating = not action.split(":", 1)[1].startswith(("Describe", "Get", "List"))
        if role not in chosen or (mutating and chosen[role][1].split(":", 1)[1].startswith(("Describe", "Get"))):
            chosen[role] = (role, action, name)
    return sorted(chosen.values())


@pytest.mark.parametrize("shard", range(RERUN_SHARDS))
def test_a_scenario_fails_with_the_call_denied_when_its_role_loses_an_action(shard: int) -> None:
    missed = []
    for role, action, name in reruns()[shard::RERUN_SHARDS]:
        # Given the template without that action on that role / When the scenario that used it runs again
        result = run(load_scenario(name), artifact=without(example(), role, action))

        # Then the call is denied as AWS denies it, listed, and the scenario fails
        denied = [d for d in result.access_denied if d["action"] == action]
        if not denied or not any(action in v for v in result.invariant_violations):
            missed.append((role, action, name, result.access_denied))
    assert missed == []
