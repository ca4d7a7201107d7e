"""The IAM contract notices every permission: removing any single action that a step was observed using,
from that step's role in the synthesized template, makes a scenario fail with that call in `accessDenied`."""

from __future__ import annotations

import copy
import dataclasses
import fnmatch
from functools import cache
from typing import Any

import pytest

from rehearsal import artifact as artifacts
from rehearsal.runner import run
from rehearsal.scenarios import load_scenario

# Together these make every step of the example configuration call what it calls: a push through both
# strategies, a failed refresh and its rollback, a blue-green rollback and group retirement, the base chain.
SCENARIOS = (
    "push-deploys-every-stage",
    "refresh-failed",
    "blue-green-shift-fails-midway",
    "blue-green-rollback-to-retained",
    "rebuild-base-chain",
    "refresh-event-lost",
)
SHARDS = 6


@cache
def example() -> artifacts.Artifact:
    return artifacts.synthesize()


@cache
def observed() -> dict[tuple[str, str], str]:
    """(role, action) → the first scenario that was observed being allowed it."""
    first: dict[tuple[str, str], str] = {}
    for name in SCENARIOS:
        result = run(load_scenario(name), artifact=example())
        assert result.access_denied == [], name
        for entry in result.observed_actions:
            role, action = entry.split(" ", 1)
            first.setdefault((role, action), name)
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


def shard(index: int) -> list[tuple[tuple[str, str], str]]:
    return sorted(observed().items())[index::SHARDS]


def test_the_scenarios_observe_the_steps_permissions() -> None:
    # Every step role the state machine uses is observed calling something, the state machine's own role too
    roles = {role for role, _ in observed()}
    functions = example().functions
    state_machine_role = example().resources[example().state_machine]["Properties"]["RoleArn"]["Fn::GetAtt"][0]
    relay = {f.role for f in functions.values() if f.step == "relay_event"}
    assert state_machine_role in roles
    assert relay <= roles
    assert len(observed()) >= 40


@pytest.mark.parametrize("index", range(SHARDS))
def test_removing_any_observed_action_is_denied_in_a_scenario(index: int) -> None:
    missed: list[Any] = []
    for (role, action), name in shard(index):
        # Given the template without that one action on that one role / When the scenario that used it runs
        result = run(load_scenario(name), artifact=without(example(), role, action))

        # Then the call is denied, and the scenario fails
        if not any(d["action"] == action for d in result.access_denied) or not result.invariant_violations:
            missed.append((role, action, name, result.access_denied))
    assert missed == []
