"""python -m benchmarks [--quick] [--json]

Runs our pipeline and the shell-script baseline's poll loop side by side, in one process, on the
same simulated scenarios, and prints a table (and with --json one JSON object as the last line).
Nothing sleeps and nothing reaches AWS: the rehearsal's emulated account and moto serve every call.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from typing import Any

from benchmarks.cost import lambda_gb_seconds, orchestration_cost
from benchmarks.imports import beyond_boto3, measure_imports
from benchmarks.orchestration import BAKE_SECONDS, REFRESH_SECONDS, baseline_history_events, run_baseline, run_ours
from benchmarks.prune import FULL_IMAGES, QUICK_IMAGES, run_prune_benchmark

# Lambda duration is not measured here (handlers run in-process against moto): assume each invocation
# bills this long at the stack's memory size. The orchestration cost is dominated by transitions anyway.
ASSUMED_MEAN_DURATION_SECONDS = 0.3
FUNCTION_MEMORY_MB = 256
WAVE_SIZE = 10


def _cost(figures: dict[str, Any]) -> float:
    invocations = figures["lambdaInvocations"]
    gb_seconds = lambda_gb_seconds(invocations, FUNCTION_MEMORY_MB, ASSUMED_MEAN_DURATION_SECONDS)
    return round(orchestration_cost(figures["transitions"], invocations, gb_seconds), 6)


def run_benchmarks(quick: bool = False) -> dict[str, Any]:
    started = time.time()
    groups = 10 if quick else 100
    ours, baseline = run_ours(), run_baseline()
    ours_many = run_ours(groups=groups, wave_size=WAVE_SIZE)
    baseline_many = baseline_history_events(groups, one_group=baseline)
    prune = run_prune_benchmark(images=QUICK_IMAGES if quick else FULL_IMAGES)
    imports = measure_imports(runs=1 if quick else 5, warmup=not quick)
    return {
        "transitions": {"ours": ours["transitions"], "baseline": baseline["transitions"]},
        "historyEvents": {"ours": ours["historyEvents"], "baseline": baseline["historyEvents"]},
        "historyEvents100": {"ours": ours_many["historyEvents"], "baseline": baseline_many["historyEvents"]},
        "lagSeconds": {"ours": ours["lagSeconds"], "baseline": baseline["lagSeconds"]},
        "pruneApiCalls": {"ours": prune["ours"]["ec2Calls"], "baseline": prune["baseline"]["ec2Calls"]},
        "pruneWallSeconds": {"ours": prune["ours"]["wallSeconds"], "baseline": prune["baseline"]["wallSeconds"]},
        # Under EC2's documented rate limits, on simulated time (benchmarks/prune.py).
        "pruneSimulatedSeconds": {
            "ours": prune["ours"]["simulatedSeconds"],
            "baseline": prune["baseline"]["simulatedSeconds"],
        },
        "pruneInvocations": {"ours": prune["ours"]["invocations"]},
        "costUsd": {"ours": _cost(ours), "baseline": _cost(baseline)},
        "importMs": imports,
        "details": {
            "quick": quick,
            "scenario": f"one group, {BAKE_SECONDS / 60:.0f}-minute bake, {REFRESH_SECONDS / 60:.0f}-minute refresh",
            "groups": groups,
            "waveSize": WAVE_SIZE,
            "lambdaInvocations": {"ours": ours["lambdaInvocations"], "baseline": baseline["lambdaInvocations"]},
            "simulatedSeconds": {"ours": ours["simulatedSeconds"], "baseline": baseline["simulatedSeconds"]},
            "oursManyGroups": ours_many,
            "baselineManyGroups": baseline_many,
            "pruneImages": prune["world"]["images"],
            "pruneApiCallsByOperation": {"ours": prune["ours"]["apiCalls"], "baseline": prune["baseline"]["apiCalls"]},
            "pruneThrottled": {"ours": prune["ours"]["throttled"], "baseline": prune["baseline"]["throttled"]},
            "pruneBaselineFailedCommands": prune["baseline"]["failedCommands"],
            "pruneLongestInvocationSeconds": prune["ours"]["longestInvocationSeconds"],
            "pruneFunctionTimeoutSeconds": prune["world"]["functionTimeoutSeconds"],
            "importMsBeyondBoto3": beyond_boto3(imports),
            "assumedMeanLambdaSeconds": ASSUMED_MEAN_DURATION_SECONDS,
            "benchmarkWallSeconds": round(time.time() - started, 1),
        },
    }


def _ratio(ours: float, baseline: float) -> str:
    return f"{ours / baseline:.3f}" if baseline else "-"


def print_table(result: dict[str, Any]) -> None:
    details = result["details"]
    print(f"Benchmark ({'quick' if details['quick'] else 'full'}): {details['scenario']}")
    rows = [
        ("state transitions, one deployment", "transitions"),
        ("history events, one deployment", "historyEvents"),
        (f"history events, {details['groups']} groups (waves of {details['waveSize']})", "historyEvents100"),
        ("mean lag after a step finishes (s)", "lagSeconds"),
        (f"EC2 API calls, prune {details['pruneImages']} AMIs x 2 snapshots", "pruneApiCalls"),
        ("prune wall time in moto (s)", "pruneWallSeconds"),
        ("prune time under EC2's rate limits (simulated s)", "pruneSimulatedSeconds"),
        ("orchestration cost per deployment (USD)", "costUsd"),
    ]
    print(f"{'':52} {'ours':>12} {'baseline':>12} {'ours/base':>10}")
    for label, key in rows:
        ours, baseline = result[key]["ours"], result[key]["baseline"]
        print(f"{label:52} {ours:>12} {baseline:>12} {_ratio(ours, baseline):>10}")
    print(f"(baseline history for {details['groups']} groups extrapolated from measured 1- and 2-group runs)")
    print(
        f"prune_images invocations for the backlog: {result['pruneInvocations']['ours']} "
        f"(function timeout {details['pruneFunctionTimeoutSeconds']} s, longest invocation "
        f"{details['pruneLongestInvocationSeconds']} simulated s); baseline commands that failed after the CLI's "
        f"retries: {details['pruneBaselineFailedCommands']}"
    )
    print()
    print(f"{'cold import (ms, median)':52} {'total':>12} {'beyond boto3':>12}")
    beyond = details["importMsBeyondBoto3"]
    for module, ms in sorted(result["importMs"].items()):
        print(f"{module:52} {ms:>12.1f} {beyond.get(module, 0.0) if module != 'boto3' else '':>12}")
    print(f"\nbenchmark wall time: {details['benchmarkWallSeconds']} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, for CI: checks it runs, not the figures")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    result = run_benchmarks(quick=args.quick)
    print_table(result)
    if args.json:
        print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
