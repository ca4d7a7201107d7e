"""`python -m benchmarks --quick --json` runs end to end and reports every figure the README quotes.

A smoke test: it checks that the benchmark runs and what it reports, never how fast anything is.
"""

from __future__ import annotations

import json

import pytest

from benchmarks.__main__ import main

PAIRED_KEYS = (
    "transitions",
    "historyEvents",
    "historyEvents100",
    "lagSeconds",
    "pruneApiCalls",
    "pruneWallSeconds",
    "pruneSimulatedSeconds",
    "costUsd",
)


def test_quick_benchmark_prints_every_figure_for_both_pipelines(capsys: pytest.CaptureFixture[str]) -> None:
    # When the quick benchmark runs with --json
    assert main(["--quick", "--json"]) == 0

    # Then the last line is one JSON object with ours and the baseline for every figure
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in PAIRED_KEYS:
        assert set(result[key]) == {"ours", "baseline"}, key
    assert "boto3" in result["importMs"]
    assert any(module.endswith(".handler") for module in result["importMs"])
    # and the orchestration figures come from deployments that really ran through both state machines
    assert result["transitions"]["ours"] > 0
    assert result["transitions"]["baseline"] > result["transitions"]["ours"]
    assert result["details"]["lambdaInvocations"]["baseline"] > 0
    # and the prune under EC2's rate limits took simulated time, in at least one invocation of ours
    assert set(result["pruneInvocations"]) == {"ours"}
    assert result["pruneInvocations"]["ours"] >= 1
    assert result["pruneSimulatedSeconds"]["ours"] > 0
    assert result["pruneSimulatedSeconds"]["baseline"] > 0
