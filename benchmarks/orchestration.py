"""Orchestration figures from the rehearsal: state transitions, history events, Lambda invocations, lag.

Both pipelines run in the same emulated account with the same durations (simulated time, nothing
sleeps): ours (statemachine/deploy.asl.json: event-driven waits with a fallback poll) and the shell-script
baseline's poll loop (benchmarks/baseline.py: Wait 15 s → describe → Choice).
"""

from __future__ import annotations

import statistics
from typing import Any

from benchmarks.baseline import baseline_asl
from rehearsal.result import Result
from rehearsal.runner import run

BAKE_SECONDS = 30 * 60 + 7  # 30 minutes, give or take: polls should not line up with the end
REFRESH_SECONDS = 20 * 60 + 11
COMMIT = "3f2c1e9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e"


def deployment_scenario(groups: int = 1, wave_size: int = 1) -> dict[str, Any]:
    """A push: a 30-minute bake, then a 20-minute refresh per group, groups in waves of `wave_size`.

    The fleet is a configuration (one rolling stage of `groups` targets), synthesized like any other: the
    benchmark runs the template `cdk deploy` would deploy for it."""
    targets = [
        {"autoScalingGroupName": f"web-app-g{i:03d}", "launchTemplateId": f"lt-0{i + 1:016x}"} for i in range(groups)
    ]
    return {
        "name": f"benchmark-{groups}-groups",
        "description": "benchmark deployment",
        "timed": True,
        "buildSeconds": BAKE_SECONDS,
        "refreshSeconds": REFRESH_SECONDS,
        "configure": {
            "stages": [{"name": "prod", "waveSize": wave_size, "targets": targets}],
            # Bounds a 100-group fleet fits in one execution: synth refuses a configuration whose worst case could
            # pass Step Functions' history quota (stacks/bounds.py). The events resume every wait here, so the
            # fallback interval does not change what is measured.
            "refresh": {"timeoutMinutes": 30, "pollIntervalSeconds": 600, "fallbackPollSeconds": 1200},
            # The longest lock synth accepts; synth checks that it outlasts the bake and the stage.
            "lock": {"ttlMinutes": 1440},
        },
        "input": {"action": "deploy", "commit": COMMIT},
        "expect": {"status": "SUCCEEDED"},
        "wallTimeoutSeconds": 60 + 3 * groups,
    }


def figures(result: Result) -> dict[str, Any]:
    if result.status != "SUCCEEDED" or result.invariant_violations:
        raise RuntimeError(f"benchmark deployment did not succeed: {result.error} {result.invariant_violations}")
    return {
        "transitions": result.transitions,
        "historyEvents": result.history_events,
        "lambdaInvocations": result.lambda_invocations,
        "lagSeconds": round(statistics.fmean(result.lags), 1) if result.lags else 0.0,
        "simulatedSeconds": round(result.simulated_seconds),
        "wallSeconds": round(result.wall_seconds, 1),
    }


def run_ours(groups: int = 1, wave_size: int = 1) -> dict[str, Any]:
    return figures(run(deployment_scenario(groups, wave_size)))


def run_baseline(groups: int = 1) -> dict[str, Any]:
    return figures(run(deployment_scenario(groups, 1), asl=baseline_asl()))


def baseline_history_events(groups: int, one_group: dict[str, Any] | None = None) -> dict[str, Any]:
    """The poll loop's history for `groups` groups, extrapolated from measured 1- and 2-group runs.

    Run for real, 100 groups polled every 15 s would need tens of thousands of Lambda calls here and
    more history events than Step Functions allows in one execution (25,000): the per-group cost is
    measured and multiplied instead (the loop is linear in the number of groups).
    """
    one = (one_group or run_baseline(1))["historyEvents"]  # a 1-group run the caller already has is reused
    two = run_baseline(2)["historyEvents"]
    return {"historyEvents": one + (groups - 1) * (two - one), "perGroup": two - one, "measured": [one, two]}
