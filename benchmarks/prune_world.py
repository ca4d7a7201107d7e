"""The emulated account the prune benchmark runs in (benchmarks.prune): the world both approaches prune, and the
EC2 calls moto answers differently from EC2.

The world (built afresh for each variant, in moto): `images` AMIs tagged for the application (pipeline "app"),
one hour apart, each with `snapshots_per_image` EBS snapshots in its block device mappings; a launch template
whose three versions use the newest images (the newest `keep` when `keep` < 3) and an Auto Scaling group running
an instance from its default version. AMI ids are the same in every world (ami-00000000000000001 is the oldest).

moto answers DescribeImages in one page whatever MaxResults says, so `PruneEmulator` pages it as EC2 does: the
API-call counts are the ones AWS would see. The calls moto lacks (DescribeImageReferences,
DescribeInstanceRefreshes, DeregisterImage with DeleteAssociatedSnapshots) are answered by
rehearsal.emulated_aws.EmulatedAws's hooks, which also count every call by operation ("ec2.DeregisterImage": n).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from rehearsal.emulated_aws import REGION, EmulatedAws, _backends, _error, _ok
from rehearsal.rate_limits import SimulatedSeconds
from rehearsal.world import configured_launch_template_id

APPLICATION = "web-app"
PIPELINE = "app"
GROUP = "web-app-bench"
# How many of the newest images the launch template's versions use.
IN_USE_IMAGES = 3
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
PRUNE_STEP = "prune_images"


@dataclass(frozen=True)
class PruneWorld:
    image_ids: list[str]  # oldest first
    in_use_ids: list[str]  # used by the launch template's versions (the newest is the group's)
    launch_template_id: str
    config: dict[str, Any]  # the DEPLOY_CONFIG "ours" runs with (its function's, in the synthesized template)
    environment: dict[str, str]  # the prune function's environment in the synthesized template
    timeout_seconds: int  # the prune function's timeout in the synthesized template


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
    function = next(f for f in synthesized.functions.values() if f.step == PRUNE_STEP)
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


@contextlib.contextmanager
def benchmark_environment() -> Iterator[None]:
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
