"""Prune at scale: the real prune_images handler against the shell-script baseline's loop, in the same emulated
account.

Each variant prunes its own fresh copy of the same world (benchmarks.prune_world): `images` AMIs of the
application, each with `snapshots_per_image` EBS snapshots, a launch template whose versions use the newest
images, and an Auto Scaling group running its default version.

- "ours": the prune_images handler (imported as Lambda does, configuration from DEPLOY_CONFIG), with
  `keepImages = keep`. It reads launch templates, instances and instance refreshes, asks DescribeImageReferences
  about every AMI it would delete (10 per request), then deregisters each with DeleteAssociatedSnapshots.
- "baseline": the shell-script baseline's loop (benchmarks.baseline.baseline_prune), call for call:
  DescribeImages (filtered by the application tag, paginated), sort by CreationDate, keep the newest `keep`, and
  for every other AMI one DeregisterImage and one DeleteSnapshot per snapshot in its block device mappings.

Both page DescribeImages by 1,000 (what the Images adapter asks for), and benchmarks.prune_world.PruneEmulator
pages it as EC2 does, so the API-call counts, by operation ("ec2.DeregisterImage": n), are the ones AWS would
see. Wall seconds are measured in moto, so they compare the two approaches' client-side work, not AWS latency.

Under EC2's documented rate limits (rehearsal/rate_limits.py: per-API token buckets, DeregisterImage and
DeleteSnapshot 100 tokens refilled at 5 per second, DescribeImages 100 at 20), on a simulated clock that moves only
when something waits: each variant's `simulatedSeconds` is the time its waits add up to. A request itself takes
no simulated time in either variant (AWS latency is not modelled; nor is the AWS CLI's process start, about a
third of a second per command for the baseline's 15,000 commands: both omissions favour the baseline).
- "ours" runs invocation after invocation, as the state machine's PruneProgress loop does, each with the prune
  function's timeout from the synthesized template as its Lambda context's remaining time, until `done`; it paces
  DeregisterImage to the refill rate through shared.clock.sleep, put on the simulated clock here.
- "baseline": the AWS CLI's documented retry behaviour (AWS CLI User Guide, "AWS CLI retries in the AWS CLI",
  https://docs.aws.amazon.com/cli/latest/userguide/cli-configure-retries.html: standard mode, the default, makes
  at most 3 attempts, retries throttling errors such as RequestLimitExceeded with exponential backoff of base 2
  and jitter, at most 20 s), one command after the other. Each command is a new process, so a command's retry
  quota is always full. A command still throttled after its 3 attempts fails; the script goes on to the next
  (its image or snapshot stays behind: `failedCommands`).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.baseline import baseline_prune
from benchmarks.prune_world import (
    APPLICATION,
    PRUNE_STEP,
    PruneEmulator,
    PruneWorld,
    benchmark_environment,
    build_world,
)
from rehearsal.emulated_aws import ACCOUNT, REGION, _backends

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LAMBDAS = PROJECT_ROOT / "lambdas"
FULL_IMAGES = 5000
QUICK_IMAGES = 200  # the CI size
EXECUTION_ID = f"arn:aws:states:{REGION}:{ACCOUNT}:execution:web-app-deploy:prune-benchmark"
# A bound on ours' invocations, far above any backlog here: a prune that never reports done fails the benchmark.
MAX_INVOCATIONS = 200
SIMULATED_START = datetime(2025, 1, 1, tzinfo=UTC)


def run_prune_benchmark(images: int = FULL_IMAGES, snapshots_per_image: int = 2, keep: int = 5) -> dict[str, Any]:
    """Both approaches, each in its own fresh world. Returns

    {"world": {"images", "snapshotsPerImage", "keep", "newestImageIds", "inUseImageIds", "functionTimeoutSeconds"},
     "ours" / "baseline": {"apiCalls": {"ec2.DeregisterImage": n, ...}, "totalCalls": n, "ec2Calls": n,
                           "wallSeconds": s, "imagesPruned": n, "snapshotsDeleted": n,
                           "imagesRemaining": [AMI ids still registered], "snapshotsRemaining": n,
                           "simulatedSeconds": s, "throttled": {"ec2.DeleteSnapshot": n, ...}},
     "ours" also: "invocations": n, "longestInvocationSeconds": s; "baseline" also: "failedCommands": n}
    """
    if images < 1 or snapshots_per_image < 1 or keep < 1:
        raise ValueError(
            f"images, snapshots_per_image and keep must each be at least 1 "
            f"(got {images}, {snapshots_per_image}, {keep})"
        )
    ours, world = _in_fresh_world(images, snapshots_per_image, keep, _run_ours)
    baseline, _ = _in_fresh_world(images, snapshots_per_image, keep, _run_baseline)
    return {
        "world": {
            "images": images,
            "snapshotsPerImage": snapshots_per_image,
            "keep": keep,
            "newestImageIds": world.image_ids[-keep:],
            "inUseImageIds": world.in_use_ids,
            "functionTimeoutSeconds": world.timeout_seconds,
        },
        "ours": ours,
        "baseline": baseline,
    }


# -- the two variants ------------------------------------------------------------------------


def _run_ours(world: PruneWorld, emulator: PruneEmulator) -> dict[str, Any]:
    """Invocation after invocation, as the PruneProgress loop makes them, until the handler reports done."""
    invocations, pruned, snapshots, longest = 0, 0, 0, 0.0
    try:
        handler = _load_handler(world.environment)
        shared_clock: Any = importlib.import_module("shared.clock")  # the Lambda side's module, by its runtime name
        real = shared_clock.now, shared_clock.sleep
        shared_clock.now = lambda: SIMULATED_START + timedelta(seconds=emulator.clock.now())
        shared_clock.sleep = emulator.clock.sleep
        progress: dict[str, Any] | None = None
        with _quiet_handler_output():
            emulator.counting = True
            start = time.perf_counter()
            while True:
                if invocations >= MAX_INVOCATIONS:
                    raise RuntimeError(f"prune_images not done after {MAX_INVOCATIONS} invocations")
                began = emulator.clock.now()
                event = {"executionId": EXECUTION_ID, "progress": progress}
                output = handler(event, _LambdaContext(world.timeout_seconds))
                invocations += 1
                longest = max(longest, emulator.clock.now() - began)
                if output["failures"]:
                    raise RuntimeError(f"prune_images reported failures: {output['failures'][:3]}")
                pruned += len(output["imagesPruned"])
                snapshots += len(output["snapshotsDeleted"])
                progress = output["progress"]
                if output["done"]:
                    break
            wall = time.perf_counter() - start
            emulator.counting = False
        shared_clock.now, shared_clock.sleep = real
    finally:
        emulator.counting = False
        _unload_handler()
    return {
        **_measurement(emulator, wall, pruned, snapshots),
        "invocations": invocations,
        "longestInvocationSeconds": round(longest, 1),
    }


def _run_baseline(world: PruneWorld, emulator: PruneEmulator) -> dict[str, Any]:
    import boto3
    from botocore.config import Config

    # One attempt per call: the retries are the CLI's (baseline_prune), each command a fresh process.
    ec2 = boto3.client("ec2", region_name=REGION, config=Config(retries={"total_max_attempts": 1}))
    emulator.counting = True
    try:
        start = time.perf_counter()
        keep = int(world.config["retention"]["keepImages"])
        pruned, snapshots, failed = baseline_prune(ec2, APPLICATION, keep, emulator.clock)
        wall = time.perf_counter() - start
    finally:
        emulator.counting = False
    return {**_measurement(emulator, wall, pruned, snapshots), "failedCommands": failed}


def _measurement(emulator: PruneEmulator, wall: float, pruned: int, snapshots: int) -> dict[str, Any]:
    ec2_backend, _ = _backends()
    return {
        "apiCalls": dict(sorted(emulator.api_calls.items())),
        "totalCalls": sum(emulator.api_calls.values()),
        # What the prune target is about: EC2 calls (ours also lists the groups and refreshes, in Auto Scaling).
        "ec2Calls": sum(n for operation, n in emulator.api_calls.items() if operation.startswith("ec2.")),
        "wallSeconds": round(wall, 3),
        "imagesPruned": pruned,
        "snapshotsDeleted": snapshots,
        "imagesRemaining": sorted(ec2_backend.amis),
        "snapshotsRemaining": len(ec2_backend.snapshots),
        "simulatedSeconds": round(emulator.clock.now(), 1),
        "throttled": dict(sorted(emulator.rate_limits.throttled.items())),
    }


def _in_fresh_world(
    images: int,
    snapshots_per_image: int,
    keep: int,
    variant: Callable[[PruneWorld, PruneEmulator], dict[str, Any]],
) -> tuple[dict[str, Any], PruneWorld]:
    from moto import mock_aws

    with benchmark_environment(), mock_aws():
        world = build_world(images, snapshots_per_image, keep)
        emulator = PruneEmulator()
        emulator.install()
        try:
            return variant(world, emulator), world
        finally:
            emulator.uninstall()


# -- running the handler as Lambda does ------------------------------------------------------


class _LambdaContext:
    """A fresh invocation's context: its whole timeout remains (the handler measures time on shared.clock)."""

    function_name = "web-app-prune_images"
    memory_limit_in_mb = 256
    invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:web-app-prune_images"
    aws_request_id = "00000000-0000-0000-0000-000000000000"

    def __init__(self, timeout_seconds: int) -> None:
        self._remaining_ms = timeout_seconds * 1000

    def get_remaining_time_in_millis(self) -> int:
        return self._remaining_ms


_saved_modules: dict[str, Any] = {}


def _load_handler(environment: dict[str, str]) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """Import prune_images.handler afresh with its function's environment (it reads it at import), as the
    rehearsal's Dispatcher does."""
    _saved_modules.update(_step_modules())
    for name in _step_modules():
        del sys.modules[name]
    os.environ.update(environment)
    importlib.import_module("shared.aws.clients").client.cache_clear()  # clients of this moto world
    with contextlib.redirect_stdout(io.StringIO()):
        module = importlib.import_module(f"{PRUNE_STEP}.handler")
    handler: Callable[[dict[str, Any], Any], dict[str, Any]] = module.lambda_handler
    return handler


def _unload_handler() -> None:
    for name in _step_modules():
        del sys.modules[name]
    sys.modules.update(_saved_modules)  # whoever imported the step before keeps the same modules
    _saved_modules.clear()
    importlib.import_module("shared.aws.clients").client.cache_clear()


def _step_modules() -> dict[str, Any]:
    return {name: module for name, module in sys.modules.items() if name.split(".")[0] == PRUNE_STEP}


@contextlib.contextmanager
def _quiet_handler_output() -> Iterator[None]:
    """The handler's log lines (one lists every decision) and metrics go to a buffer, not the terminal."""
    logger = importlib.import_module("shared.observability").logger  # the Lambda side's module, by its runtime name

    sink = io.StringIO()
    handler = logger.registered_handler
    previous = handler.setStream(sink) if isinstance(handler, logging.StreamHandler) else None
    try:
        with contextlib.redirect_stdout(sink):
            yield
    finally:
        if previous is not None and isinstance(handler, logging.StreamHandler):
            handler.setStream(previous)
