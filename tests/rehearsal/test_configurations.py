"""`python -m rehearsal --config FILE` rehearses any valid configuration: its own stages, groups, launch
templates, strategies and waves, from the template synthesized for it (once per content)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rehearsal.runner import Target, run
from rehearsal.scenarios import load_scenario
from stacks.config import load_config

CONFIGS = Path(__file__).parent / "configs"
SHAPES = ["one-group", "github-three-stages", "blue-green-waves"]
SCENARIOS = {
    "push-deploys-every-stage": ("SUCCEEDED", None),
    "refresh-failed": ("FAILED", "RefreshFailed"),
    "rollback-to-previous": ("SUCCEEDED", None),
}


def configured_targets(path: Path) -> list[tuple[str, str, str, str]]:
    config = load_config(str(path)).deploy_config()
    return [
        (stage.name, stage.strategy, t.auto_scaling_group_name, t.launch_template_id)
        for stage in config.stages
        for t in stage.targets
    ]


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
@pytest.mark.parametrize("shape", SHAPES)
def test_every_configuration_is_rehearsed_as_configured(shape: str, scenario: str) -> None:
    # Given a configuration of its own shape
    path = CONFIGS / f"{shape}.jsonc"

    # When a scenario runs on it
    result = run(load_scenario(scenario), Target(config=path))

    # Then it ran on that configuration, unchanged, with every invariant and no denied call
    status, error = SCENARIOS[scenario]
    assert result.note is None
    assert result.invariant_violations == []
    assert result.access_denied == []
    assert (result.status, result.error) == (status, error)
    rehearsed = [(t["stage"], t["strategy"], t["autoScalingGroupName"], t["launchTemplateId"]) for t in result.targets]
    assert rehearsed == configured_targets(path)
    # and the account really holds each configured group, on its configured launch template, and no other
    configured = {(group, template) for _, _, group, template in configured_targets(path)}
    assert configured <= set(result.fleet.items())
    assert set(result.fleet.values()) == {template for _, template in configured}


def test_blue_green_waves_run_two_groups_at_once_and_every_group_goes_green() -> None:
    # Given four blue-green groups in waves of two / When a push deploys
    result = run(load_scenario("push-deploys-every-stage"), Target(config=CONFIGS / "blue-green-waves.jsonc"))

    # Then every group is served by a new green group on the new image, and the waves are as configured
    assert [t["wave"] for t in result.targets if t["stage"] == "fleet"] == [1, 1, 2, 2]
    live = {g["target"]: g for g in result.groups.values() if g["inTargetGroup"]}
    assert sorted(live) == ["api-eu-1", "api-eu-2", "api-eu-3", "api-eu-4"]
    assert all(g["role"] == "live" and g["image"] not in result.world_images["app"] for g in live.values())
    assert result.api_calls["autoscaling.CreateAutoScalingGroup"] == 4
    assert result.refreshed_groups == ["api-canary"]
