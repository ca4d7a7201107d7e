"""The benchmark's parts at small sizes: the prune comparison (exact API calls), import timing, cost arithmetic.

No timing thresholds: the figures vary by machine; what is pinned is what each approach calls and deletes.
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from moto import mock_aws

from benchmarks import cost, imports, prune, prune_world

IMAGES = 30
KEEP = 5
PRUNED = IMAGES - KEEP


@pytest.fixture(scope="module")
def small_run() -> dict[str, Any]:
    return prune.run_prune_benchmark(images=IMAGES, snapshots_per_image=2, keep=KEEP)


def test_prune_benchmark_ours_makes_fewer_calls_than_the_shell_script_baseline(small_run: dict[str, Any]) -> None:
    # Given 30 AMIs with 2 snapshots each, keep 5
    # When both approaches prune their own copy of the world
    ours, baseline = small_run["ours"], small_run["baseline"]
    # Then ours makes fewer calls, and both prune the same number of images and snapshots
    assert ours["totalCalls"] < baseline["totalCalls"]
    assert ours["imagesPruned"] == baseline["imagesPruned"] == PRUNED
    assert ours["snapshotsDeleted"] == baseline["snapshotsDeleted"] == PRUNED * 2


def test_prune_benchmark_counts_exactly_the_calls_each_approach_implies(small_run: dict[str, Any]) -> None:
    # Given the small world (one page of images, one launch template, one group)
    # When both approaches have pruned
    ours, baseline = small_run["ours"], small_run["baseline"]
    # Then ours: one read of each kind, DescribeImageReferences per 10 candidates, one deregister per AMI;
    # the application's groups are listed by tag, then the untagged configured group by name
    assert ours["apiCalls"] == {
        "autoscaling.DescribeAutoScalingGroups": 2,
        "autoscaling.DescribeInstanceRefreshes": 1,
        "ec2.DeregisterImage": PRUNED,
        "ec2.DescribeImageReferences": 3,  # 25 candidates, 10 per request
        "ec2.DescribeImages": 1,
        "ec2.DescribeInstances": 1,
        "ec2.DescribeLaunchTemplateVersions": 1,
    }
    assert ours["totalCalls"] == 6 + 3 + PRUNED
    assert ours["ec2Calls"] == 3 + 3 + PRUNED  # what the benchmark's pruneApiCalls reports
    # And the shell-script baseline: one deregister per AMI plus one delete per snapshot
    assert baseline["apiCalls"] == {
        "ec2.DeleteSnapshot": PRUNED * 2,
        "ec2.DeregisterImage": PRUNED,
        "ec2.DescribeImages": 1,
    }
    assert baseline["totalCalls"] == 1 + PRUNED * 3


def test_prune_benchmark_neither_approach_deletes_a_kept_or_in_use_image(small_run: dict[str, Any]) -> None:
    # Given the newest 5 images, of which the launch template uses the newest 3
    world = small_run["world"]
    assert len(world["newestImageIds"]) == KEEP
    assert set(world["inUseImageIds"]) <= set(world["newestImageIds"])
    for variant in ("ours", "baseline"):
        # When the approach has pruned
        result = small_run[variant]
        # Then exactly the newest images remain, with their snapshots
        assert result["imagesRemaining"] == sorted(world["newestImageIds"]), variant
        assert result["snapshotsRemaining"] == KEEP * 2, variant


def test_prune_benchmark_pages_describe_images_by_a_thousand_as_ec2_does() -> None:
    # Given 1,001 AMIs of which 1,000 are kept
    # When both approaches prune
    result = prune.run_prune_benchmark(images=1001, snapshots_per_image=1, keep=1000)
    ours, baseline = result["ours"], result["baseline"]
    # Then each lists the images in two pages, and only the oldest image goes
    assert ours["apiCalls"]["ec2.DescribeImages"] == baseline["apiCalls"]["ec2.DescribeImages"] == 2
    assert ours["apiCalls"]["ec2.DescribeInstances"] == 6  # 1,001 image ids, 200 per filter
    assert ours["apiCalls"]["ec2.DeregisterImage"] == baseline["apiCalls"]["ec2.DeregisterImage"] == 1
    assert baseline["apiCalls"]["ec2.DeleteSnapshot"] == 1
    for variant in (ours, baseline):
        assert "ami-00000000000000001" not in variant["imagesRemaining"]
        assert len(variant["imagesRemaining"]) == 1000


def test_prune_emulator_keeps_a_snapshot_another_image_still_uses() -> None:
    # Given two AMIs whose second snapshots are one and the same
    with prune_world.benchmark_environment(), mock_aws():
        prune_world.build_world(images=2, snapshots_per_image=2, keep=1)
        ec2_backend, _ = prune_world._backends()
        older, newer = ec2_backend.amis["ami-00000000000000001"], ec2_backend.amis["ami-00000000000000002"]
        shared_snapshot = older.extra_snapshot_ids[0]
        newer.extra_snapshot_ids = (shared_snapshot,)
        emulator = prune_world.PruneEmulator()
        emulator.install()
        try:
            # When the older one is deregistered with its snapshots
            response = boto3.client("ec2", region_name=prune_world.REGION).deregister_image(
                ImageId=older.id, DeleteAssociatedSnapshots=True
            )
        finally:
            emulator.uninstall()
        # Then its own snapshot is deleted and the shared one is skipped, as EC2 reports it
        codes = {r["SnapshotId"]: r["ReturnCode"] for r in response["DeleteSnapshotResults"]}
        assert codes == {older.ebs_snapshot.id: "success", shared_snapshot: "skipped"}
        assert shared_snapshot in ec2_backend.snapshots
        assert older.ebs_snapshot.id not in ec2_backend.snapshots


def test_prune_benchmark_refuses_an_empty_world() -> None:
    # Given no images / When the benchmark is asked for them / Then it says what is wrong
    with pytest.raises(ValueError, match="at least 1"):
        prune.run_prune_benchmark(images=0)


def test_imports_times_every_handler_module_and_boto3() -> None:
    # Given the handler of every function the template deploys (each imported with its own environment)
    modules = imports.handler_modules()
    assert "prune_images.handler" in modules
    assert "github_webhook.handler" in modules
    # (every step folder's handler: shared/handler.py is the helper they all use, not a function)
    folders = {p.parent.name for p in imports.LAMBDAS.glob("*/handler.py")} - {"shared"}
    assert set(modules) == {f"{folder}.handler" for folder in folders}
    # When each is imported once in a fresh interpreter
    measured = imports.measure_imports(runs=1, warmup=False)
    # Then every module and boto3 has a positive time, and the part beyond boto3 is the difference
    assert set(measured) == {*modules, "boto3"}
    assert all(ms > 0 for ms in measured.values())
    beyond = imports.beyond_boto3(measured)
    assert set(beyond) == set(modules)
    assert beyond["prune_images.handler"] == pytest.approx(
        measured["prune_images.handler"] - measured["boto3"], abs=0.11
    )


def test_imports_refuses_what_is_not_a_module_name() -> None:
    # Given a name that would be code, not a module / When measured / Then refused before anything runs
    with pytest.raises(ValueError, match="not module names"):
        imports.measure_imports(["os; print(1)"], runs=1)


def test_cost_of_an_orchestration_at_published_prices() -> None:
    # Given 1,000 transitions, 1M Lambda requests and 1,000 GB-seconds
    # When priced
    dollars = cost.orchestration_cost(transitions=1000, lambda_invocations=1_000_000, lambda_gb_seconds=1000.0)
    # Then $0.025 + $0.20 + $0.0133334
    assert dollars == pytest.approx(0.2383334)


def test_cost_gb_seconds_from_invocations_memory_and_duration() -> None:
    # Given 10 runs of a 256 MB function lasting 0.5 s each / When converted / Then 10 x 0.25 GB x 0.5 s
    assert cost.lambda_gb_seconds(invocations=10, memory_mb=256, mean_duration_seconds=0.5) == pytest.approx(1.25)
    assert cost.orchestration_cost(0, 0, 0.0) == 0.0
    with pytest.raises(ValueError, match="negative"):
        cost.orchestration_cost(-1, 0, 0.0)
    with pytest.raises(ValueError, match="memory_mb > 0"):
        cost.lambda_gb_seconds(1, 0, 1.0)


def test_prune_benchmark_under_rate_limits_paces_ours_and_lets_the_baseline_burst(small_run: dict[str, Any]) -> None:
    # Given 25 AMIs to prune, far fewer than DeregisterImage's and DeleteSnapshot's 100-token buckets
    ours, baseline = small_run["ours"], small_run["baseline"]
    # Then ours paces DeregisterImage at the documented 5 per second from its first call (it does not count on
    # a burst the account's other callers share), in one invocation
    assert ours["invocations"] == 1
    assert ours["simulatedSeconds"] == pytest.approx((PRUNED - 1) / 5, abs=0.1)
    assert ours["throttled"] == {}
    # and the shell-script baseline's 75 calls all fit in the full buckets: no wait, nothing failed
    assert baseline["simulatedSeconds"] == 0
    assert baseline["failedCommands"] == 0


@pytest.fixture(scope="module")
def backlog_run() -> dict[str, Any]:
    return prune.run_prune_benchmark(images=1200, snapshots_per_image=2, keep=KEEP)


def test_prune_benchmark_backlog_takes_several_invocations_each_within_the_function_timeout(
    backlog_run: dict[str, Any],
) -> None:
    # Given 1,195 AMIs to prune, more than one invocation's result budget, with the synthesized function timeout
    ours, baseline, world = backlog_run["ours"], backlog_run["baseline"], backlog_run["world"]
    # When ours loops as the state machine does / Then it needs two invocations, each within its timeout
    assert ours["invocations"] == 2
    assert ours["longestInvocationSeconds"] <= world["functionTimeoutSeconds"]
    # and it ends with exactly the newest images, having paced every deletion at the documented rate
    assert ours["imagesRemaining"] == sorted(world["newestImageIds"])
    assert ours["imagesPruned"] == 1195
    assert ours["simulatedSeconds"] >= (1195 - 2) / 5
    # and the shell-script baseline, whose DeleteSnapshot bucket runs dry, waits on the CLI's backoff for longer
    assert baseline["throttled"]["ec2.DeleteSnapshot"] > 0
    assert baseline["simulatedSeconds"] > ours["simulatedSeconds"]
