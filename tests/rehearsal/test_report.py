"""The rehearsal's timeline reads as a deployment: stage and wave headers, dry runs say what they would do, and
a closing line says what to do next."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any, cast

from rehearsal.invariants import _header
from rehearsal.report import next_step
from rehearsal.result import Result
from rehearsal.summaries import summarize


def entered(name: str, state_input: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "input": json.dumps(state_input)}


def test_a_stage_starts_with_a_header_naming_its_strategy_groups_and_approval() -> None:
    stage = {"name": "prod", "strategy": "blue-green", "waveSize": 2, "approval": True, "targets": [{}, {}, {}]}
    waves: list[int] = [1, 2]  # the previous stage's
    header = _header(entered("NeedsApproval", {"stage": stage}), waves)
    assert header == "stage prod (blue-green, 3 group(s) in waves of 2, after approval)"
    assert waves == []  # wave numbers start again in each stage


def test_waves_are_numbered_within_their_stage_and_name_their_groups() -> None:
    waves: list[int] = []
    first = _header(
        entered("DeployWave", {"wave": [{"autoScalingGroupName": "a"}, {"autoScalingGroupName": "b"}]}), waves
    )
    second = _header(entered("DeployWave", {"wave": [{"autoScalingGroupName": "c"}]}), waves)
    assert (first, second) == ("wave 1: a, b", "wave 2: c")


def test_other_states_have_no_header() -> None:
    assert _header(entered("CheckRefresh", {"stage": {"name": "prod"}}), []) is None
    assert _header({"name": "NeedsApproval"}, []) is None  # no input recorded


def test_a_dry_run_prune_says_what_it_would_prune() -> None:
    out = {"imagesPruned": ["ami-1", "ami-2"], "snapshotsDeleted": ["snap-1"], "imagesKept": ["ami-3"]}
    assert summarize("prune_images", {**out, "dryRun": True}) == "would prune 2 AMI(s), 1 snapshot(s); kept 1"
    assert summarize("prune_images", out) == "pruned 2 AMI(s), 1 snapshot(s); kept 1"


def test_the_closing_line_points_at_the_scenario_when_the_outcome_is_not_the_expected_one() -> None:
    result = cast(Result, SimpleNamespace(scenario="bake-timeout", invariant_violations=[]))
    assert "statemachine/scenarios/bake-timeout.json" in next_step(result, unexpected=True)
    assert "make deploy" in next_step(result, unexpected=False)
    broken = cast(Result, SimpleNamespace(scenario="bake-timeout", invariant_violations=["lock still held"]))
    assert "statemachine/scenarios/bake-timeout.json" in next_step(broken, unexpected=False)
