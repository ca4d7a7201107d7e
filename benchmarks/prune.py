"""Prune at scale: the real prune_images handler against the seed pipeline's loop, in the same emulated account.

The world (built afresh for each variant, in moto): `images` AMIs tagged for the application (pipeline "app"),
one hour apart, each with `snapshots_per_image` EBS snapshots in its block device mappings; a launch template
whose three versions use the newest images (the newest `keep` when `keep` < 3) and an Auto Scaling group running
an instance from its default version. AMI ids are the same in every world (ami-00000000000000001 is the oldest).

- "ours": the prune_images handler (imported as Lambda does, configuration from DEPLOY_CONFIG), with
  `keepImages = keep`. It reads launch templates, instances and instance refreshes, asks DescribeImageReferences
  about every AMI it would delete (10 per request), then deregisters each with DeleteAssociatedSnapshots.
- "baseline": the seed shell scripts, call for call: DescribeImages (filtered by the application tag, paginated),
  sort by CreationDate, keep the newest `keep`, and for every other AMI one DeregisterImage and one DeleteSnapshot
  per snapshot in its block device mappings.

Both page DescribeImages by 1,000 (what the Images adapter asks for). moto answers DescribeImages in one page
whatever MaxResults says, so the emulator below pages it as EC2 does: the API-call counts are the ones AWS
would see. The calls moto lacks (DescribeImageReferences, DescribeInstanceRefreshes, DeregisterImage with
DeleteAssociatedSnapshots) are answered by rehearsal.emulated_aws.EmulatedAws's hooks, which also count every
call by operation ("ec2.DeregisterImage": n). Wall seconds are measured in moto, so they compare the two
approaches' client-side work, not AWS latency.

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
import functools
import importlib
import io
import json
import logging
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from rehearsal.emulated_aws import ACCOUNT, REGION, EmulatedAws, _backends, _error, _ok
from rehearsal.rate_limits import SimulatedSeconds
from rehearsal.world import configured_launch_template_id

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LAMBDAS = PROJECT_ROOT / "lambdas"
APPLICATION = "web-app"
PIPELINE = "app"
GROUP = "web-app-bench"
FULL_IMAGES = 5000
QUICK_IMAGES = 200  # the CI size
# The page size the Images adapter asks DescribeImages for; the baseline asks for the same.
DESCRIBE_IMAGES_PAGE_SIZE = 1000
# How many of the newest images the launch template's versions use.
IN_USE_IMAGES = 3
EXECUTION_ID = f"arn:aws:states:{REGION}:{ACCOUNT}:execution:web-app-deploy:prune-benchmark"
ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "benchmark",
    "AWS_SECRET_ACCESS_KEY": "benchmark",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "MOTO_EC2_LOAD_DEFAULT_AMIS": "false",
    "POWERTOOLS_TRACE_DISABLED": "true",
}
TEMPLATE_ID = "lt-0be0000000000001"  # the benchmark group's launch template, as configured
_UNSET = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")
_STEP = "prune_images"
# The AWS CLI's standard retry mode (the default): 3 attempts in all (AWS CLI User Guide, "AWS CLI retries").
CLI_MAX_ATTEMPTS = 3
# A bound on ours' invocations, far above any backlog here: a prune that never reports done fails the benchmark.
MAX_INVOCATIONS = 200
SIMULATED_START = datetime(2025, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class PruneWorld:
    image_ids: list[str]  # oldest first
    in_use_ids: list[str]  # used by the launch template's versions (the newest is the group's)
    launch_template_id: str
    config: dict[str, Any]  # the DEPLOY_CONFIG "ours" runs with (its function's, in the synthesized template)
    environment: dict[str, str]  # the prune function's environment in the synthesized template
    timeout_seconds: int  # the prune function's timeout in the synthesized template


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


def seed_prune(ec2: Any, application: str, keep: int, clock: SimulatedSeconds | None = None) -> tuple[int, int, int]:
    """The seed pipeline's prune, call for call, each call an AWS CLI command with the CLI's retries (`ec2` makes
    one attempt per call; `clock` is where the backoff waits). Returns (images deregistered, snapshots deleted,
    commands that failed)."""
    from botocore.exceptions import ClientError

    retry = _CliRetry(clock or SimulatedSeconds())

    def describe() -> list[dict[str, Any]]:
        pages = ec2.get_paginator("describe_images").paginate(
            Owners=["self"],
            Filters=[{"Name": "tag:immutable-ami:application", "Values": [application]}],
            PaginationConfig={"PageSize": DESCRIBE_IMAGES_PAGE_SIZE},
        )
        return [i for page in pages for i in page.get("Images", [])]

    found = sorted(retry(describe), key=lambda i: i["CreationDate"], reverse=True)
    pruned = snapshots = failed = 0
    for image in found[keep:]:
        try:
            retry(functools.partial(ec2.deregister_image, ImageId=image["ImageId"]))
            pruned += 1
        except ClientError:
            failed += 1
        for mapping in image.get("BlockDeviceMappings", []):
            snapshot_id = mapping.get("Ebs", {}).get("SnapshotId")
            if snapshot_id:
                try:
                    retry(functools.partial(ec2.delete_snapshot, SnapshotId=snapshot_id))
                    snapshots += 1
                except ClientError:
                    failed += 1
    return pruned, snapshots, failed


class _CliRetry:
    """One AWS CLI command's attempts: retried on a throttling error, at most CLI_MAX_ATTEMPTS in all, each wait
    computed by botocore's standard-mode backoff (what the CLI runs: base 2, full jitter, capped at 20 s)."""

    THROTTLING = frozenset({"RequestLimitExceeded", "Throttling", "ThrottlingException"})

    def __init__(self, clock: SimulatedSeconds) -> None:
        import random

        from botocore.retries.standard import ExponentialBackoff, RetryEventAdapter, ThrottlingErrorDetector

        self._clock = clock
        self._backoff = ExponentialBackoff(
            throttling_detector=ThrottlingErrorDetector(RetryEventAdapter()),
            random=random.Random(1).random,  # noqa: S311 - jitter, not a secret: the same run twice
        )

    def __call__(self, command: Callable[[], Any]) -> Any:
        from botocore.awsrequest import AWSResponse
        from botocore.exceptions import ClientError
        from botocore.retries.standard import RetryContext

        for attempt in range(1, CLI_MAX_ATTEMPTS + 1):
            try:
                return command()
            except ClientError as exc:
                if exc.response["Error"]["Code"] not in self.THROTTLING or attempt == CLI_MAX_ATTEMPTS:
                    raise
                context = RetryContext(
                    attempt_number=attempt,
                    parsed_response=exc.response,
                    http_response=AWSResponse(None, 400, {}, None),
                )
                self._clock.sleep(self._backoff.delay_amount(context))
        raise AssertionError("unreachable")


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

    # One attempt per call: the retries are the CLI's (seed_prune), each command a fresh process.
    ec2 = boto3.client("ec2", region_name=REGION, config=Config(retries={"total_max_attempts": 1}))
    emulator.counting = True
    try:
        start = time.perf_counter()
        keep = int(world.config["retention"]["keepImages"])
        pruned, snapshots, failed = seed_prune(ec2, APPLICATION, keep, emulator.clock)
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

    with _environment(), mock_aws():
        world = build_world(images, snapshots_per_image, keep)
        emulator = PruneEmulator()
        emulator.install()
        try:
            return variant(world, emulator), world
        finally:
            emulator.uninstall()


# -- the world -------------------------------------------------------------------------------


def build_world(images: int, snapshots_per_image: int, keep: int) -> PruneWorld:
    """Inside mock_aws: the AMIs through moto's backend (fast), the launch template and group through boto3."""
    import boto3

    ec2_backend, _ = _backends()
    ami_class = _benchmark_ami_class()
    volume = ec2_backend.create_volume(size=8, zone_name=f"{REGION}a")  # the source of the extra snapshots
    oldest = datetime(2024, 1, 1)  # moto keeps naive UTC datetimes
    image_ids: list[str] = []
    for index in range(images):
        ami_id = f"ami-{index + 1:017x}"
        ami = ami_class(
            ec2_backend,
            ami_id,
            name=f"{APPLICATION}-{PIPELINE}-{index:05d}",
            description="prune benchmark",
            creation_date=oldest + timedelta(hours=index),
            region_name=f"{REGION}a",
        )
        ami.extra_snapshot_ids = tuple(
            ec2_backend.create_snapshot(volume.id, f"Created for {ami_id}", from_ami=ami_id).id
            for _ in range(snapshots_per_image - 1)
        )
        ec2_backend.create_tags(
            [ami_id], {"immutable-ami:application": APPLICATION, "immutable-ami:pipeline": PIPELINE}
        )
        ec2_backend.amis[ami_id] = ami
        image_ids.append(ami_id)

    in_use = image_ids[-min(IN_USE_IMAGES, keep, images) :]
    ec2 = boto3.client("ec2", region_name=REGION)
    with configured_launch_template_id(TEMPLATE_ID):
        template = ec2.create_launch_template(
            LaunchTemplateName=f"{GROUP}-lt", LaunchTemplateData={"ImageId": in_use[0], "InstanceType": "t3.micro"}
        )["LaunchTemplate"]
    template_id = str(template["LaunchTemplateId"])
    for image_id in in_use[1:]:
        ec2.create_launch_template_version(
            LaunchTemplateId=template_id, SourceVersion="1", LaunchTemplateData={"ImageId": image_id}
        )
    default = str(len(in_use))
    ec2.modify_launch_template(LaunchTemplateId=template_id, DefaultVersion=default)
    subnet_id = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
    boto3.client("autoscaling", region_name=REGION).create_auto_scaling_group(
        AutoScalingGroupName=GROUP,
        LaunchTemplate={"LaunchTemplateId": template_id, "Version": default},
        MinSize=1,
        MaxSize=2,
        DesiredCapacity=1,
        VPCZoneIdentifier=subnet_id,
    )
    environment, timeout_seconds = prune_function(keep)
    return PruneWorld(
        image_ids=image_ids,
        in_use_ids=in_use,
        launch_template_id=template_id,
        config=json.loads(environment["DEPLOY_CONFIG"]),
        environment=environment,
        timeout_seconds=timeout_seconds,
    )


def prune_environment(keep: int) -> dict[str, str]:
    """The prune function's environment as the stack deploys it for a one-group pipeline keeping `keep` images."""
    return prune_function(keep)[0]


@cache
def prune_function(keep: int) -> tuple[dict[str, str], int]:
    """The prune function's environment and timeout as the stack deploys it for a one-group pipeline keeping `keep`
    images: the example configuration with that fleet and retention, synthesized (cached by content)."""
    from rehearsal import artifact as artifacts
    from rehearsal.intrinsics import Account, Resolver
    from stacks.config import strip_json_comments

    config = json.loads(strip_json_comments(artifacts.configured_file().read_text()))
    config["stages"] = [{"name": "prod", "targets": [{"autoScalingGroupName": GROUP, "launchTemplateId": TEMPLATE_ID}]}]
    config["retention"] = {**config.get("retention", {}), "keepImages": keep}
    synthesized = artifacts.synthesize(config)
    function = next(f for f in synthesized.functions.values() if f.step == _STEP)
    environment: dict[str, str] = Resolver(synthesized, Account()).resolve(function.environment, function.logical_id)
    if json.loads(environment["DEPLOY_CONFIG"])["application"] != APPLICATION:
        raise RuntimeError(f"the example configuration's application is not {APPLICATION!r}")
    return environment, function.timeout_seconds


@cache
def _benchmark_ami_class() -> type[Any]:
    from moto.ec2.models.amis import Ami

    class BenchmarkAmi(Ami):
        """A moto AMI with more than one EBS snapshot in its block device mappings.

        Its tags are read straight from the backend's tag table: moto's own lookup scans every tag in the
        region for each resource, which makes DescribeImages quadratic (about 50 s for 5,000 images).
        """

        extra_snapshot_ids: tuple[str, ...] = ()

        @property
        def block_device_mappings(self) -> list[dict[str, Any]]:
            extra = [
                {
                    "DeviceName": f"/dev/sd{chr(ord('b') + n)}",
                    "Ebs": {
                        "SnapshotId": snapshot_id,
                        "VolumeSize": 8,
                        "DeleteOnTermination": True,
                        "VolumeType": "gp3",
                    },
                }
                for n, snapshot_id in enumerate(self.extra_snapshot_ids)
            ]
            return [*super().block_device_mappings, *extra]

        def get_tags(self) -> list[dict[str, str]]:
            return [
                {"resource_id": self.id, "key": key, "value": value, "resource_type": "image"}
                for key, value in self.ec2_backend.tags.get(self.id, {}).items()
            ]

    return BenchmarkAmi


class PruneEmulator(EmulatedAws):
    """EmulatedAws's hooks, with DescribeImages paged as EC2 pages it and DeregisterImage for many snapshots.

    - DescribeImages: moto ignores MaxResults; the page the request asks for (NextToken is an offset) is cut
      from moto's answer before moto serializes it, and NextToken is set when more remain.
    - DeregisterImage with DeleteAssociatedSnapshots: deletes every snapshot in the AMI's block device mappings
      that no other AMI uses ("skipped" for a shared one, as EC2 reports it).
    - DeregisterImage (either way) and DeleteSnapshot are applied to moto's backend directly; errors (an unknown
      AMI or snapshot, a snapshot still in use) are left to moto. moto's request dispatch costs about 2 ms a
      call, more than the work itself: answered here, the two variants' deletions cost the same per call, and
      their wall times compare the client-side work of each approach.
    """

    def __init__(self) -> None:
        self.clock = SimulatedSeconds()  # the rate limits' time: it moves only when a variant waits
        super().__init__({}, "", lambda _: None, sim_now=self.clock.now)
        self.sim_sleep = self.clock.sleep  # botocore's retry backoff waits on it too
        self._handlers["ec2.DescribeImages"] = self._describe_images_page
        self._handlers["ec2.DeleteSnapshot"] = self._delete_snapshot
        self._window: tuple[int, int] | None = None
        self._next_offset: int | None = None
        self._snapshot_users: Counter[str] | None = None
        self._backend: Any = None

    def install(self) -> None:
        super().install()
        import boto3

        boto3._get_default_session().events.register(
            "after-call.ec2.DescribeImages", self._set_next_token, unique_id="benchmark-describe-images-page"
        )
        self._backend, _ = _backends()
        self._backend.describe_images = self._paged(type(self._backend).describe_images.__get__(self._backend))

    def uninstall(self) -> None:
        import boto3

        boto3._get_default_session().events.unregister(
            "after-call.ec2.DescribeImages", unique_id="benchmark-describe-images-page"
        )
        if self._backend is not None:
            del self._backend.describe_images  # the class's method again
            self._backend = None
        super().uninstall()

    def _describe_images_page(self, params: dict[str, Any]) -> Any:
        token = params.get("NextToken")
        if token is not None and not str(token).isdigit():
            return _error("InvalidParameterValue", f"Invalid NextToken: {token}")
        size = params.get("MaxResults")
        self._window = (int(token or 0), int(size)) if size else None
        self._next_offset = None
        return None  # moto answers, with the page cut by `_paged`

    def _paged(self, describe: Callable[..., list[Any]]) -> Callable[..., list[Any]]:
        def describe_page(*args: Any, **kwargs: Any) -> list[Any]:
            found = describe(*args, **kwargs)
            window, self._window = self._window, None
            if window is None:
                return found
            offset, size = window
            if offset + size < len(found):
                self._next_offset = offset + size
            return found[offset : offset + size]

        return describe_page

    def _set_next_token(self, parsed: dict[str, Any], **_: Any) -> None:
        if self._next_offset is not None:
            parsed["NextToken"] = str(self._next_offset)
            self._next_offset = None

    def _deregister_image(self, params: dict[str, Any]) -> Any:
        ec2_backend, _ = _backends()
        ami = ec2_backend.amis.get(params["ImageId"])
        if ami is None:
            return None  # moto answers InvalidAMIID.NotFound / .Unavailable
        if not params.get("DeleteAssociatedSnapshots"):
            ec2_backend.deregister_image(ami.id)  # the snapshots stay
            return _ok({"Return": True})
        users = self._users(ec2_backend)
        snapshot_ids = [m["Ebs"]["SnapshotId"] for m in ami.block_device_mappings if m.get("Ebs", {}).get("SnapshotId")]
        ec2_backend.deregister_image(ami.id)
        results = []
        for snapshot_id in snapshot_ids:
            users[snapshot_id] -= 1
            if users[snapshot_id] > 0:
                results.append({"SnapshotId": snapshot_id, "ReturnCode": "skipped"})
                continue
            ec2_backend.delete_snapshot(snapshot_id)
            self.snapshots_deleted.append(snapshot_id)
            results.append({"SnapshotId": snapshot_id, "ReturnCode": "success"})
        return _ok({"Return": True, "DeleteSnapshotResults": results})

    def _delete_snapshot(self, params: dict[str, Any]) -> Any:
        ec2_backend, _ = _backends()
        snapshot = ec2_backend.snapshots.get(params["SnapshotId"])
        if snapshot is None or snapshot.from_ami in ec2_backend.amis:
            return None  # moto answers InvalidSnapshot.NotFound / InvalidSnapshot.InUse
        ec2_backend.delete_snapshot(snapshot.id)
        return _ok({})

    def _users(self, ec2_backend: Any) -> Counter[str]:
        """How many registered AMIs use each snapshot (counted once: the benchmark creates no AMI while pruning)."""
        if self._snapshot_users is None:
            self._snapshot_users = Counter(
                m["Ebs"]["SnapshotId"]
                for ami in ec2_backend.amis.values()
                for m in ami.block_device_mappings
                if m.get("Ebs", {}).get("SnapshotId")
            )
        return self._snapshot_users


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
        module = importlib.import_module(f"{_STEP}.handler")
    handler: Callable[[dict[str, Any], Any], dict[str, Any]] = module.lambda_handler
    return handler


def _unload_handler() -> None:
    for name in _step_modules():
        del sys.modules[name]
    sys.modules.update(_saved_modules)  # whoever imported the step before keeps the same modules
    _saved_modules.clear()
    importlib.import_module("shared.aws.clients").client.cache_clear()


def _step_modules() -> dict[str, Any]:
    return {name: module for name, module in sys.modules.items() if name.split(".")[0] == _STEP}


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


@contextlib.contextmanager
def _environment() -> Iterator[None]:
    """Fake credentials, the region, no moto default AMIs and the Powertools settings; restored afterwards."""
    saved = dict(os.environ)
    for name in _UNSET:
        os.environ.pop(name, None)
    os.environ.update(ENVIRONMENT)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
