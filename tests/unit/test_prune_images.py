"""prune_images: facts from moto (images, launch templates, instances, Auto Scaling groups), and botocore's Stubber
for what moto lacks or ignores (DescribeImageReferences, DeregisterImage with DeleteAssociatedSnapshots, instance
refreshes)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws
from moto.ec2.models import ec2_backends
from prune_images.logic import prune_images
from prune_images.models import PruneImagesInput, PruneProgress

from shared import clock, tags
from shared.aws.images import Images
from shared.aws.references import FleetReferences
from shared.config import DeployConfig
from shared.errors import InvalidInput, LaunchTemplateNotFound
from tests.conftest import ACCOUNT, REGION

NOW = datetime(2025, 6, 1, tzinfo=UTC)
GROUPS = ("web-app-test", "web-app-prod")
# What DescribeImageReferences must be asked: every resource type, instances in every state but terminated,
# every launch template version.
REFERENCE_TYPES = [
    {
        "ResourceType": "ec2:Instance",
        "ResourceTypeOptions": [
            {"OptionName": "state-name", "OptionValues": ["pending", "running", "shutting-down", "stopping", "stopped"]}
        ],
    },
    {
        "ResourceType": "ec2:LaunchTemplate",
        "ResourceTypeOptions": [{"OptionName": "version-depth", "OptionValues": ["10000"]}],
    },
]


class SplitClient:
    """A client that sends the calls moto lacks or ignores to a Stubber-wrapped client, the rest to moto."""

    def __init__(self, moto: Any, stubbed: Any, stubbed_calls: frozenset[str]) -> None:
        self._moto = moto
        self._stubbed = stubbed
        self._stubbed_calls = stubbed_calls

    def get_paginator(self, name: str) -> Any:
        return (self._stubbed if name in self._stubbed_calls else self._moto).get_paginator(name)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stubbed if name in self._stubbed_calls else self._moto, name)


@dataclass
class Fleet:
    """A moto account with this application's images, two launch templates and stubs for what moto lacks."""

    ec2: Any
    autoscaling: Any  # moto's: for the application's groups
    ec2_stub: Stubber
    autoscaling_stub: Stubber
    images: Images
    fleet: FleetReferences
    template_ids: list[str]
    _source_instance: str
    amis: dict[str, str] = field(default_factory=dict)  # label -> AMI id

    def bake(
        self,
        label: str,
        pipeline: str | None,
        days_ago: float,
        *,
        base: str | None = None,
        application: str = "web-app",
    ) -> str:
        image_tags = [{"Key": tags.APPLICATION, "Value": application}]
        if pipeline is not None:
            image_tags.append({"Key": tags.PIPELINE, "Value": pipeline})
        if base is not None:
            image_tags.append({"Key": tags.BASE_IMAGE, "Value": self.amis[base]})
        ami = self.ec2.create_image(
            InstanceId=self._source_instance,
            Name=f"web-app-{label}",
            TagSpecifications=[{"ResourceType": "image", "Tags": image_tags}],
        )["ImageId"]
        ec2_backends[ACCOUNT][REGION].amis[ami].creation_date = NOW - timedelta(days=days_ago)
        self.amis[label] = ami
        return ami

    def use_in_template(self, template: int, label: str, *, default: bool) -> int:
        template_id = self.template_ids[template]
        version = self.ec2.create_launch_template_version(
            LaunchTemplateId=template_id, LaunchTemplateData={"ImageId": self.amis[label]}
        )["LaunchTemplateVersion"]["VersionNumber"]
        if default:
            self.ec2.modify_launch_template(LaunchTemplateId=template_id, DefaultVersion=str(version))
        return int(version)

    def group(
        self,
        name: str,
        template_id: str,
        version: str,
        *,
        role: str | None = "retained",
        application: str | None = "web-app",
        size: int = 0,
    ) -> None:
        """An Auto Scaling group on a launch template version; by default a retained group scaled to zero."""
        group_tags = {tags.APPLICATION: application, tags.ROLE: role}
        self.autoscaling.create_auto_scaling_group(
            AutoScalingGroupName=name,
            LaunchTemplate={"LaunchTemplateId": template_id, "Version": version},
            MinSize=size,
            MaxSize=size,
            DesiredCapacity=size,
            AvailabilityZones=[f"{REGION}a"],
            Tags=[{"Key": k, "Value": v, "PropagateAtLaunch": False} for k, v in group_tags.items() if v is not None],
        )

    def launch(self, label: str) -> str:
        return self.ec2.run_instances(ImageId=self.amis[label], MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]

    def config(self, keep_images: int = 3) -> DeployConfig:
        return DeployConfig.model_validate(
            {
                "application": "web-app",
                "stages": [
                    {
                        "name": "test",
                        "targets": [{"autoScalingGroupName": GROUPS[0], "launchTemplateId": self.template_ids[0]}],
                    },
                    {
                        "name": "prod",
                        "targets": [{"autoScalingGroupName": GROUPS[1], "launchTemplateId": self.template_ids[1]}],
                    },
                ],
                "retention": {"keepImages": keep_images},
            }
        )

    def expect_refreshes(self, per_group: dict[str, list[dict[str, Any]]] | None = None) -> None:
        for group in GROUPS:
            refreshes = (per_group or {}).get(group, [])
            self.autoscaling_stub.add_response(
                "describe_instance_refreshes",
                {"InstanceRefreshes": refreshes},
                {"AutoScalingGroupName": group, "MaxRecords": 100},
            )

    def expect_reference_check(self, labels: list[str], references: list[dict[str, str]] | None = None) -> None:
        self.ec2_stub.add_response(
            "describe_image_references",
            {"ImageReferences": references or []},
            {
                "ImageIds": [self.amis[label] for label in labels],
                "IncludeAllResourceTypes": True,
                "ResourceTypes": REFERENCE_TYPES,
                "MaxResults": 1000,
            },
        )

    def expect_deregister(self, label: str, snapshots: list[tuple[str, str]] | None = None) -> None:
        results = [{"SnapshotId": s, "ReturnCode": code} for s, code in (snapshots or [])]
        self.ec2_stub.add_response(
            "deregister_image",
            {"Return": True, "DeleteSnapshotResults": results},
            {"ImageId": self.amis[label], "DeleteAssociatedSnapshots": True},
        )

    def expect_deregister_error(self, label: str, code: str, message: str = "") -> None:
        self.ec2_stub.add_client_error(
            "deregister_image",
            service_error_code=code,
            service_message=message,
            expected_params={"ImageId": self.amis[label], "DeleteAssociatedSnapshots": True},
        )

    def snapshot_of(self, label: str) -> str:
        image = self.ec2.describe_images(ImageIds=[self.amis[label]])["Images"][0]
        return str(image["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"])

    def prune(
        self,
        *,
        dry_run: bool = False,
        protect: list[str] | None = None,
        keep_images: int = 3,
        seconds_left: float | None = None,
        progress: dict[str, Any] | None = None,
        recycle_bin_days: int | None = None,
    ) -> dict:
        payload = PruneImagesInput(
            execution_id="arn:aws:states:eu-west-1:123456789012:execution:deploy:run-1",
            dry_run=dry_run,
            protect_ami_ids=[self.amis[label] for label in protect or []],
            progress=None if progress is None else PruneProgress.model_validate(progress),
        )
        config = self.config(keep_images)
        if recycle_bin_days is not None:
            retention = config.retention.model_copy(update={"recycle_bin_days": recycle_bin_days})
            config = config.model_copy(update={"retention": retention})
        result = prune_images(payload, config, images=self.images, fleet=self.fleet, seconds_left=seconds_left)
        return result.model_dump(by_alias=True)

    def label(self, ami_id: str) -> str:
        return next(label for label, ami in self.amis.items() if ami == ami_id)

    def labels(self, ami_ids: list[str]) -> list[str]:
        return sorted(self.label(a) for a in ami_ids)


@pytest.fixture(scope="module")
def clients() -> dict[str, Any]:
    """boto3 clients built once per module (loading the EC2 model costs ~0.1 s a client); moto intercepts
    their calls inside each test's mock_aws()."""
    creds = {"region_name": REGION, "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    return {
        "ec2": boto3.client("ec2", **creds),
        "stubbed_ec2": boto3.client("ec2", **creds),
        "autoscaling": boto3.client("autoscaling", **creds),
        "stubbed_autoscaling": boto3.client("autoscaling", **creds),
    }


@pytest.fixture
def fleet(monkeypatch: pytest.MonkeyPatch, clients: dict[str, Any]) -> Iterator[Fleet]:
    # moto's ~1,300 public AMIs take seconds to load per test and are not needed: images are baked from an instance.
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    with mock_aws():
        ec2, stubbed_ec2 = clients["ec2"], clients["stubbed_ec2"]
        autoscaling, stubbed_autoscaling = clients["autoscaling"], clients["stubbed_autoscaling"]
        source = ec2.run_instances(ImageId="ami-0000000000000000f", MinCount=1, MaxCount=1)["Instances"][0]
        source = source["InstanceId"]
        template_ids = [
            ec2.create_launch_template(
                LaunchTemplateName=f"web-app-{name}", LaunchTemplateData={"InstanceType": "t3.micro"}
            )["LaunchTemplate"]["LaunchTemplateId"]
            for name in ("test", "prod")
        ]
        with Stubber(stubbed_ec2) as ec2_stub, Stubber(stubbed_autoscaling) as autoscaling_stub:
            split = SplitClient(ec2, stubbed_ec2, frozenset({"describe_image_references", "deregister_image"}))
            split_autoscaling = SplitClient(
                autoscaling, stubbed_autoscaling, frozenset({"describe_instance_refreshes"})
            )
            yield Fleet(
                ec2=ec2,
                autoscaling=autoscaling,
                ec2_stub=ec2_stub,
                autoscaling_stub=autoscaling_stub,
                images=Images(split),
                fleet=FleetReferences(split, split_autoscaling),
                template_ids=template_ids,
                _source_instance=source,
            )
            ec2_stub.assert_no_pending_responses()
            autoscaling_stub.assert_no_pending_responses()


class SimulatedClock:
    """shared.clock on a clock that moves only when the step sleeps: pacing costs no real time."""

    def __init__(self) -> None:
        self.at = NOW
        self.slept = 0.0

    def now(self) -> datetime:
        return self.at

    def sleep(self, seconds: float) -> None:
        self.slept += seconds
        self.at += timedelta(seconds=seconds)


@pytest.fixture
def sim_clock(monkeypatch: pytest.MonkeyPatch) -> SimulatedClock:
    simulated = SimulatedClock()
    monkeypatch.setattr(clock, "now", simulated.now)
    monkeypatch.setattr(clock, "sleep", simulated.sleep)
    return simulated


def bake_history(fleet: Fleet) -> None:
    """Five app images (app1 oldest) on three base images (base1 oldest)."""
    fleet.bake("base1", "base", 30)
    fleet.bake("base2", "base", 20)
    fleet.bake("base3", "base", 10)
    fleet.bake("app1", "app", 25, base="base1")
    fleet.bake("app2", "app", 15, base="base2")
    fleet.bake("app3", "app", 9, base="base3")
    fleet.bake("app4", "app", 5, base="base3")
    fleet.bake("app5", "app", 1, base="base3")


def test_prune_deletes_images_beyond_the_newest_n_of_each_pipeline(fleet: Fleet) -> None:
    # Given five app images and three base images, keepImages 3, nothing referencing the old ones
    bake_history(fleet)
    fleet.expect_refreshes()
    fleet.expect_reference_check(["app2", "app1"])
    fleet.expect_deregister("app2", [("snap-0aaa", "success")])
    fleet.expect_deregister("app1", [("snap-0bbb", "success")])

    # When pruning
    result = fleet.prune()

    # Then the two oldest app images go (newest first), every base image stays (three is the base keep count)
    assert fleet.labels(result["imagesPruned"]) == ["app1", "app2"]
    assert fleet.labels(result["imagesKept"]) == ["app3", "app4", "app5", "base1", "base2", "base3"]
    assert result["snapshotsDeleted"] == ["snap-0aaa", "snap-0bbb"]
    assert result["skipped"] == []
    assert result["failures"] == []


def test_prune_keeps_base_image_of_kept_app_image(fleet: Fleet) -> None:
    # Given keepImages 1: only base3 is the newest base, but app5 (kept) was built on base2
    fleet.bake("base1", "base", 30)
    fleet.bake("base2", "base", 20)
    fleet.bake("base3", "base", 10)
    fleet.bake("app1", "app", 25, base="base1")
    fleet.bake("app5", "app", 1, base="base2")
    fleet.expect_refreshes()
    fleet.expect_reference_check(["app1", "base1"])
    fleet.expect_deregister("app1")
    fleet.expect_deregister("base1")

    # When pruning
    result = fleet.prune(keep_images=1)

    # Then base2 stays as the parent of app5, base1 goes with app1
    assert fleet.labels(result["imagesKept"]) == ["app5", "base2", "base3"]
    assert fleet.labels(result["imagesPruned"]) == ["app1", "base1"]


def test_prune_keeps_ami_used_by_default_launch_template(fleet: Fleet) -> None:
    # Given the prod template's default version uses the oldest app image
    bake_history(fleet)
    fleet.use_in_template(1, "app1", default=True)
    fleet.expect_refreshes()
    fleet.expect_reference_check(["app2"])
    fleet.expect_deregister("app2")

    # When pruning
    result = fleet.prune()

    # Then app1 is kept, app2 is the only one pruned
    assert "app1" in fleet.labels(result["imagesKept"])
    assert fleet.labels(result["imagesPruned"]) == ["app2"]


def test_prune_keeps_ami_used_by_any_launch_template_version(fleet: Fleet) -> None:
    # Given an old, non-default version of the test template uses app2
    bake_history(fleet)
    fleet.use_in_template(0, "app2", default=False)
    fleet.use_in_template(0, "app5", default=True)
    fleet.expect_refreshes()
    fleet.expect_reference_check(["app1"])
    fleet.expect_deregister("app1")

    # When pruning
    result = fleet.prune()

    # Then app2 is kept
    assert "app2" in fleet.labels(result["imagesKept"])
    assert fleet.labels(result["imagesPruned"]) == ["app1"]


def test_prune_keeps_ami_used_by_running_or_stopped_instance_but_not_terminated(fleet: Fleet) -> None:
    # Given (keepImages 2) a running instance of app1, a stopped one of app2, a terminated one of app3
    bake_history(fleet)
    fleet.launch("app1")
    fleet.ec2.stop_instances(InstanceIds=[fleet.launch("app2")])
    fleet.ec2.terminate_instances(InstanceIds=[fleet.launch("app3")])
    fleet.expect_refreshes()
    fleet.expect_reference_check(["app3"])
    fleet.expect_deregister("app3")

    # When pruning
    result = fleet.prune(keep_images=2)

    # Then app1 and app2 stay (and base1, the base of app1), the terminated instance holds nothing
    assert fleet.labels(result["imagesKept"]) == ["app1", "app2", "app4", "app5", "base1", "base2", "base3"]
    assert fleet.labels(result["imagesPruned"]) == ["app3"]


def test_prune_keeps_ami_named_by_in_flight_instance_refresh(fleet: Fleet) -> None:
    # Given an in-progress refresh of the prod group pinned to version 1 of a template outside the configuration
    # that uses app1, and a finished refresh of the test group pinned to one that uses app2
    bake_history(fleet)
    live = _template(fleet, "live", "app1")
    done = _template(fleet, "done", "app2")
    fleet.expect_refreshes(
        {
            GROUPS[0]: [_refresh("r-done", "Successful", done, "1")],
            GROUPS[1]: [_refresh("r-live", "InProgress", live, "1")],
        }
    )
    fleet.expect_reference_check(["app2"])
    fleet.expect_deregister("app2")

    # When pruning
    result = fleet.prune()

    # Then app1 stays because of the in-flight refresh; app2 goes
    assert "app1" in fleet.labels(result["imagesKept"])
    assert fleet.labels(result["imagesPruned"]) == ["app2"]


def _template(fleet: Fleet, name: str, label: str) -> str:
    return str(
        fleet.ec2.create_launch_template(LaunchTemplateName=name, LaunchTemplateData={"ImageId": fleet.amis[label]})[
            "LaunchTemplate"
        ]["LaunchTemplateId"]
    )


def _refresh(refresh_id: str, status: str, template_id: str, version: str) -> dict[str, Any]:
    return {
        "InstanceRefreshId": refresh_id,
        "AutoScalingGroupName": "group",
        "Status": status,
        "DesiredConfiguration": {"LaunchTemplate": {"LaunchTemplateId": template_id, "Version": version}},
    }


def _plan_reasons(caplog: pytest.LogCaptureFixture, fleet: Fleet) -> dict[str, list[str]]:
    """Each image's reasons in the logged prune plan (the last one: the final plan), by label."""
    plans = [r for r in caplog.records if r.getMessage() == "prune plan"]
    return {fleet.label(d["amiId"]): d["reasons"] for d in plans[-1].__dict__["decisions"]}


def test_prune_keeps_ami_of_retained_blue_green_group_scaled_to_zero(
    fleet: Fleet, caplog: pytest.LogCaptureFixture
) -> None:
    # Given the prod target moved to a new launch template, while a retained group of the application, scaled to
    # zero (no instance, no refresh), still launches app1 from the old template, which is no longer configured
    bake_history(fleet)
    old_template = _template(fleet, "web-app-prod-old", "app1")
    fleet.group("web-app-prod-exec1", old_template, "1")
    fleet.expect_refreshes()
    fleet.expect_reference_check(["app2"])
    fleet.expect_deregister("app2")

    # When pruning
    result = fleet.prune()

    # Then app1 stays for a rollback to that group, and the plan says so
    assert "app1" in fleet.labels(result["imagesKept"])
    assert fleet.labels(result["imagesPruned"]) == ["app2"]
    assert _plan_reasons(caplog, fleet)["app1"] == ["used by Auto Scaling group web-app-prod-exec1 (retained)"]


def test_prune_keeps_ami_of_configured_untagged_group_on_latest_version_of_another_template(fleet: Fleet) -> None:
    # Given the (untagged) configured test group launches $Latest of a template outside the configuration,
    # whose version 1 uses app1 and version 2 (the latest) app2
    bake_history(fleet)
    template = _template(fleet, "web-app-test-manual", "app1")
    fleet.ec2.create_launch_template_version(
        LaunchTemplateId=template, LaunchTemplateData={"ImageId": fleet.amis["app2"]}
    )
    fleet.group(GROUPS[0], template, "$Latest", role=None, application=None)
    fleet.expect_refreshes()
    fleet.expect_reference_check(["app1"])
    fleet.expect_deregister("app1")

    # When pruning
    result = fleet.prune()

    # Then app2 (what $Latest launches) stays, app1 goes
    assert "app2" in fleet.labels(result["imagesKept"])
    assert fleet.labels(result["imagesPruned"]) == ["app1"]


def test_prune_names_groups_on_the_default_version_of_a_configured_template_in_the_plan(
    fleet: Fleet, caplog: pytest.LogCaptureFixture
) -> None:
    # Given the live group of the prod target launches $Default of the configured prod template (app1)
    bake_history(fleet)
    fleet.use_in_template(1, "app1", default=True)
    fleet.group("web-app-prod-exec2", fleet.template_ids[1], "$Default", role="live")
    fleet.expect_refreshes()
    fleet.expect_reference_check(["app2"])
    fleet.expect_deregister("app2")

    # When pruning
    fleet.prune()

    # Then app1's reasons name both the template version and the group
    reasons = _plan_reasons(caplog, fleet)["app1"]
    assert reasons == [
        f"launch-template reference: {fleet.template_ids[1]} version 2 (default)",
        "used by Auto Scaling group web-app-prod-exec2 (live)",
    ]


def test_prune_ignores_groups_of_other_applications(fleet: Fleet) -> None:
    # Given another application's group launches app1 from a template outside the configuration
    bake_history(fleet)
    fleet.group("other-app-prod", _template(fleet, "other-app", "app1"), "1", application="other-app")
    fleet.expect_refreshes()
    fleet.expect_reference_check(["app2", "app1"])
    fleet.expect_deregister("app2")
    fleet.expect_deregister("app1")

    # When pruning
    result = fleet.prune()

    # Then it protects nothing of ours: both old images go
    assert fleet.labels(result["imagesPruned"]) == ["app1", "app2"]


def test_prune_treats_a_group_on_a_version_that_no_longer_exists_as_launching_nothing(fleet: Fleet) -> None:
    # Given a retained group pinned to version 9 of a template that has only version 1 (app1)
    bake_history(fleet)
    fleet.group("web-app-prod-exec1", _template(fleet, "web-app-prod-old", "app1"), "9")
    fleet.expect_refreshes()
    fleet.expect_reference_check(["app2", "app1"])
    fleet.expect_deregister("app2")
    fleet.expect_deregister("app1")

    # When pruning
    result = fleet.prune()

    # Then the prune goes on (the group can launch nothing) and app1 is not held by it
    assert fleet.labels(result["imagesPruned"]) == ["app1", "app2"]


def test_prune_keeps_ami_in_protect_list(fleet: Fleet) -> None:
    # Given the execution protects app1 (its rollback target)
    bake_history(fleet)
    fleet.expect_refreshes()
    fleet.expect_reference_check(["app2"])
    fleet.expect_deregister("app2")

    # When pruning with app1 protected
    result = fleet.prune(protect=["app1"])

    # Then app1 stays
    assert "app1" in fleet.labels(result["imagesKept"])
    assert fleet.labels(result["imagesPruned"]) == ["app2"]


def test_prune_keeps_ami_that_describe_image_references_reports(fleet: Fleet) -> None:
    # Given DescribeImageReferences finds an SSM parameter that names app1 (nothing else we read does)
    bake_history(fleet)
    fleet.expect_refreshes()
    fleet.expect_reference_check(
        ["app2", "app1"],
        [
            {
                "ImageId": fleet.amis["app1"],
                "ResourceType": "ssm:Parameter",
                "Arn": "arn:aws:ssm:eu-west-1:123456789012:parameter/golden",
            }
        ],
    )
    fleet.expect_deregister("app2")

    # When pruning
    result = fleet.prune()

    # Then app1 stays, only app2 is deregistered
    assert "app1" in fleet.labels(result["imagesKept"])
    assert fleet.labels(result["imagesPruned"]) == ["app2"]


def test_prune_deletes_nothing_when_image_reference_check_fails(fleet: Fleet) -> None:
    # Given DescribeImageReferences is denied
    bake_history(fleet)
    fleet.expect_refreshes()
    fleet.ec2_stub.add_client_error("describe_image_references", service_error_code="UnauthorizedOperation")

    # When pruning
    result = fleet.prune()

    # Then nothing is deregistered and the two candidates are reported as skipped with the reason
    assert result["imagesPruned"] == []
    assert sorted(fleet.label(s["amiId"]) for s in result["skipped"]) == ["app1", "app2"]
    assert all("UnauthorizedOperation" in s["reason"] for s in result["skipped"])


def test_prune_treats_already_deregistered_ami_as_done(fleet: Fleet) -> None:
    # Given app2 was deregistered by an earlier attempt that DescribeImages does not show yet
    bake_history(fleet)
    fleet.expect_refreshes()
    fleet.expect_reference_check(["app2", "app1"])
    fleet.expect_deregister_error("app2", "InvalidAMIID.Unavailable", "The image is no longer available")
    fleet.expect_deregister("app1")

    # When pruning
    result = fleet.prune()

    # Then both count as pruned, no failure
    assert fleet.labels(result["imagesPruned"]) == ["app1", "app2"]
    assert result["failures"] == []


def test_prune_reports_snapshot_shared_with_another_ami_as_skip_not_failure(fleet: Fleet) -> None:
    # Given AWS keeps one of app2's snapshots because another AMI uses it, and may not delete app1's, which carries
    # the application tag (so the role should have been allowed: a real permission problem)
    bake_history(fleet)
    tagged = fleet.snapshot_of("app1")
    fleet.ec2.create_tags(Resources=[tagged], Tags=[{"Key": tags.APPLICATION, "Value": "web-app"}])
    fleet.expect_refreshes()
    fleet.expect_reference_check(["app2", "app1"])
    fleet.expect_deregister("app2", [("snap-0shared", "skipped"), ("snap-0own", "success")])
    fleet.expect_deregister("app1", [(tagged, "missing-permissions")])

    # When pruning
    result = fleet.prune()

    # Then app2 is pruned, its shared snapshot reported as skipped, the permission problem as a failure
    assert fleet.labels(result["imagesPruned"]) == ["app1", "app2"]
    assert result["snapshotsDeleted"] == ["snap-0own"]
    assert [(fleet.label(s["amiId"]), "snap-0shared" in s["reason"]) for s in result["skipped"]] == [("app2", True)]
    assert [(fleet.label(f["amiId"]), f["code"]) for f in result["failures"]] == [("app1", "missing-permissions")]


def test_prune_keeps_an_untagged_snapshot_of_an_older_image_and_reports_it_instead_of_failing(fleet: Fleet) -> None:
    # Given app1 was baked before snapshots were tagged: its snapshot lacks the application tag, so DeregisterImage
    # may not delete it (DeleteSnapshot is conditioned on that tag) and answers missing-permissions
    bake_history(fleet)
    untagged = fleet.snapshot_of("app1")
    fleet.expect_refreshes()
    fleet.expect_reference_check(["app2", "app1"])
    fleet.expect_deregister("app2", [("snap-0own", "success")])
    fleet.expect_deregister("app1", [(untagged, "missing-permissions")])

    # When pruning
    result = fleet.prune()

    # Then app1 is deregistered, its snapshot is listed as kept with what to do once, and nothing counts as failed
    assert fleet.labels(result["imagesPruned"]) == ["app1", "app2"]
    assert result["failures"] == []
    assert result["skipped"] == []
    assert result["snapshotsKept"] == [untagged]
    assert "not tagged immutable-ami:application=web-app" in result["snapshotsKeptReason"]
    assert "delete them by hand" in result["snapshotsKeptReason"]
    assert result["snapshotsDeleted"] == ["snap-0own"]


def test_prune_result_says_how_long_pruned_images_stay_restorable(fleet: Fleet) -> None:
    # Given two images to prune and a Recycle Bin retention of 10 days
    bake_history(fleet)
    fleet.expect_refreshes()
    fleet.expect_reference_check(["app2", "app1"])
    fleet.expect_deregister("app2")
    fleet.expect_deregister("app1")

    # When pruning
    result = fleet.prune(recycle_bin_days=10)

    # Then the result (which the notification carries) says for how long and how to restore them
    assert result["recycleBinDays"] == 10
    assert "restorable for 10 day(s)" in result["restorable"]
    assert "make restore-image AMI=" in result["restorable"]


def test_prune_result_says_pruned_images_cannot_be_restored_without_a_recycle_bin(fleet: Fleet) -> None:
    # Given retention.recycleBinDays 0 (no Recycle Bin rule), in a dry run
    bake_history(fleet)
    fleet.expect_refreshes()
    fleet.expect_reference_check(["app2", "app1"])

    # When pruning
    result = fleet.prune(dry_run=True, recycle_bin_days=0)

    # Then the result says a pruned image is gone for good
    assert result["recycleBinDays"] == 0
    assert "cannot be restored" in result["restorable"]
    assert "retention.recycleBinDays is 0" in result["restorable"]


def test_prune_skips_ami_whose_deregistration_is_refused_as_protected(fleet: Fleet) -> None:
    # Given AWS refuses to deregister app2 because of deregistration protection
    bake_history(fleet)
    fleet.expect_refreshes()
    fleet.expect_reference_check(["app2", "app1"])
    fleet.expect_deregister_error(
        "app2", "InvalidParameterValue", "Cannot deregister the image because deregistration protection is enabled"
    )
    fleet.expect_deregister("app1")

    # When pruning
    result = fleet.prune()

    # Then app2 is skipped and reported, app1 is pruned
    assert fleet.labels(result["imagesPruned"]) == ["app1"]
    assert [fleet.label(s["amiId"]) for s in result["skipped"]] == ["app2"]
    assert result["failures"] == []


def test_prune_reports_unexpected_error_and_finishes_other_images(fleet: Fleet) -> None:
    # Given deregistering app2 fails unexpectedly
    bake_history(fleet)
    fleet.expect_refreshes()
    fleet.expect_reference_check(["app2", "app1"])
    fleet.expect_deregister_error("app2", "InternalError", "something broke")
    fleet.expect_deregister("app1")

    # When pruning
    result = fleet.prune()

    # Then app2 is a failure with its code and message, app1 is still pruned
    assert result["failures"] == [{"amiId": fleet.amis["app2"], "code": "InternalError", "message": "something broke"}]
    assert fleet.labels(result["imagesPruned"]) == ["app1"]


def test_prune_dry_run_returns_the_plan_and_deletes_nothing(fleet: Fleet) -> None:
    # Given two prunable images (and no deregister call expected: the Stubber fails on any)
    bake_history(fleet)
    fleet.expect_refreshes()
    fleet.expect_reference_check(["app2", "app1"])

    # When pruning in dry run
    result = fleet.prune(dry_run=True)

    # Then the plan names them and their snapshots, and both images still exist
    assert fleet.labels(result["imagesPruned"]) == ["app1", "app2"]
    expected_snapshots = sorted(
        m["Ebs"]["SnapshotId"]
        for i in fleet.ec2.describe_images(ImageIds=[fleet.amis["app1"], fleet.amis["app2"]])["Images"]
        for m in i["BlockDeviceMappings"]
    )
    assert result["snapshotsDeleted"] == expected_snapshots
    assert len(fleet.ec2.describe_images(ImageIds=[fleet.amis["app1"], fleet.amis["app2"]])["Images"]) == 2


def test_prune_leaves_untagged_pipeline_and_recent_images_alone(fleet: Fleet) -> None:
    # Given an image of this application without a pipeline tag, older than everything
    bake_history(fleet)
    fleet.bake("manual", None, 400)
    fleet.expect_refreshes()
    fleet.expect_reference_check(["app2", "app1"])
    fleet.expect_deregister("app2")
    fleet.expect_deregister("app1")

    # When pruning
    result = fleet.prune()

    # Then the untagged image is kept: not ours to prune
    assert "manual" in fleet.labels(result["imagesKept"])


def test_prune_fails_before_deleting_when_a_configured_launch_template_is_missing(fleet: Fleet) -> None:
    # Given the prod launch template was deleted
    bake_history(fleet)
    fleet.ec2.delete_launch_template(LaunchTemplateId=fleet.template_ids[1])

    # When / Then pruning stops with LaunchTemplateNotFound (and no deregister call was stubbed)
    with pytest.raises(LaunchTemplateNotFound, match=fleet.template_ids[1]):
        fleet.prune()


def test_prune_handler_end_to_end(
    fleet: Fleet, lambda_context: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the handler wired to the moto-backed adapters and the fleet's config
    from prune_images import handler

    from shared.observability import metrics

    # (the Metrics singleton may predate the test's environment: give it the namespace the stack sets)
    monkeypatch.setattr(metrics, "namespace", "ImmutableAmiPipeline")

    bake_history(fleet)
    monkeypatch.setattr(handler, "CONFIG", fleet.config())
    monkeypatch.setattr(handler, "_images", lambda: fleet.images)
    monkeypatch.setattr(handler, "_fleet", lambda: fleet.fleet)
    fleet.expect_refreshes()
    fleet.expect_reference_check(["app2", "app1"])
    fleet.expect_deregister("app2", [("snap-0aaa", "success")])
    fleet.expect_deregister("app1", [("snap-0bbb", "success"), ("snap-0ccc", "success")])
    event = {
        "executionId": "arn:aws:states:eu-west-1:123456789012:execution:deploy:run-1",
        "dryRun": False,
        "protectAmiIds": [fleet.amis["app5"], None],
    }

    # When invoking it
    result = handler.lambda_handler(event, lambda_context)

    # Then the result has the documented shape and the metrics were emitted
    assert set(result) == {
        "imagesKept",
        "imagesPruned",
        "snapshotsDeleted",
        "skipped",
        "failures",
        "done",
        "progress",
        "recycleBinDays",
        "restorable",
        "snapshotsKept",
        "snapshotsKeptReason",
    }
    assert fleet.labels(result["imagesPruned"]) == ["app1", "app2"]
    # and, everything having fit in one invocation, it is done, with the totals a person reads at the end
    assert result["done"] is True
    assert result["progress"] == {
        "rounds": 1,
        "imagesPruned": 2,
        "snapshotsDeleted": 3,
        "failures": 0,
        "remaining": 0,
        "referencedAmiIds": [],
    }
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert emf[-1]["ImagesPruned"] == [2.0]
    assert emf[-1]["SnapshotsDeleted"] == [3.0]


def test_prune_handler_rejects_malformed_protect_list(lambda_context: Any) -> None:
    # Given a payload whose protect list holds something that is not an AMI id
    from prune_images import handler

    event = {"executionId": "arn:x", "protectAmiIds": ["ami-0123456789abcdef0", "lt-0123"]}

    # When / Then the handler fails with InvalidInput naming the entry
    with pytest.raises(InvalidInput, match=r"protectAmiIds\[1\]"):
        handler.lambda_handler(event, lambda_context)


# --- adapters: exact requests, pagination, error translation (Stubber only) ---


def test_image_references_are_asked_in_batches_of_ten_and_every_page_is_read() -> None:
    # Given twelve images: AWS takes ten per request; the first batch answers in two pages
    ec2 = boto3.client("ec2", region_name=REGION)
    ids = [f"ami-{n:017x}" for n in range(12)]
    common = {"IncludeAllResourceTypes": True, "ResourceTypes": REFERENCE_TYPES, "MaxResults": 1000}
    ref = {"ResourceType": "ec2:Instance", "Arn": "arn:aws:ec2:eu-west-1:123456789012:instance/i-1"}
    with Stubber(ec2) as stub:
        stub.add_response(
            "describe_image_references",
            {"ImageReferences": [{"ImageId": ids[0], **ref}], "NextToken": "t1"},
            {"ImageIds": ids[:10], **common},
        )
        stub.add_response(
            "describe_image_references",
            {"ImageReferences": [{"ImageId": ids[9], **ref}]},
            {"ImageIds": ids[:10], "NextToken": "t1", **common},
        )
        stub.add_response("describe_image_references", {"ImageReferences": []}, {"ImageIds": ids[10:], **common})

        # When asking
        references = Images(ec2).find_references(ids)

        # Then all three calls were made and both references found
        stub.assert_no_pending_responses()
    assert [r.image_id for r in references] == [ids[0], ids[9]]


def test_describe_images_lists_only_own_images_of_the_application_page_by_page() -> None:
    # Given two pages of images
    ec2 = boto3.client("ec2", region_name=REGION)
    request = {
        "Owners": ["self"],
        "Filters": [{"Name": f"tag:{tags.APPLICATION}", "Values": ["web-app"]}],
        "MaxResults": 1000,
    }
    image = {"State": "available", "CreationDate": "2025-01-01T00:00:00.000Z", "DeregistrationProtection": "disabled"}
    with Stubber(ec2) as stub:
        stub.add_response(
            "describe_images", {"Images": [{"ImageId": "ami-00000001", **image}], "NextToken": "n"}, request
        )
        stub.add_response(
            "describe_images", {"Images": [{"ImageId": "ami-00000002", **image}]}, {**request, "NextToken": "n"}
        )

        # When listing
        found = Images(ec2).list_application_images("web-app")

        # Then both pages were read
        stub.assert_no_pending_responses()
    assert [i.image_id for i in found] == ["ami-00000001", "ami-00000002"]


def test_instance_refreshes_follow_next_token_and_read_mixed_instances_policy() -> None:
    # Given two pages of refreshes, the second with a mixed instances policy naming an AMI directly
    autoscaling = boto3.client("autoscaling", region_name=REGION)
    ec2 = boto3.client("ec2", region_name=REGION)
    mixed = {
        "MixedInstancesPolicy": {
            "LaunchTemplate": {
                "LaunchTemplateSpecification": {"LaunchTemplateName": "web", "Version": "4"},
                "Overrides": [{"InstanceType": "t3.small", "ImageId": "ami-0000000000000000a"}],
            }
        }
    }
    with Stubber(autoscaling) as stub:
        stub.add_response(
            "describe_instance_refreshes",
            {"InstanceRefreshes": [{"InstanceRefreshId": "r1", "Status": "Successful"}], "NextToken": "n"},
            {"AutoScalingGroupName": "g", "MaxRecords": 100},
        )
        stub.add_response(
            "describe_instance_refreshes",
            {"InstanceRefreshes": [{"InstanceRefreshId": "r2", "Status": "Baking", "DesiredConfiguration": mixed}]},
            {"AutoScalingGroupName": "g", "MaxRecords": 100, "NextToken": "n"},
        )

        # When reading the group's refreshes
        refreshes = FleetReferences(ec2, autoscaling).instance_refreshes("g")

        # Then both pages are there, with the template (by name) and the AMI of the override
        stub.assert_no_pending_responses()
    assert [(r.refresh_id, r.status) for r in refreshes] == [("r1", "Successful"), ("r2", "Baking")]
    assert refreshes[1].image_ids == ("ami-0000000000000000a",)
    assert [(t.launch_template_name, t.version) for t in refreshes[1].launch_templates] == [("web", "4")]


def test_application_groups_reads_every_tagged_page_then_only_missing_configured_names() -> None:
    # Given two pages of groups tagged with the application (one configured group among them), and one
    # configured group without the tag
    autoscaling = boto3.client("autoscaling", region_name=REGION)
    ec2 = boto3.client("ec2", region_name=REGION)
    tagged = {"Filters": [{"Name": f"tag:{tags.APPLICATION}", "Values": ["web-app"]}], "MaxRecords": 100}

    def group(name: str, **extra: Any) -> dict[str, Any]:
        return {
            "AutoScalingGroupName": name,
            "MinSize": 0,
            "MaxSize": 0,
            "DesiredCapacity": 0,
            "DefaultCooldown": 300,
            "AvailabilityZones": ["eu-west-1a"],
            "HealthCheckType": "EC2",
            "CreatedTime": datetime(2025, 1, 1, tzinfo=UTC),
            **extra,
        }

    role = [{"Key": tags.ROLE, "Value": "retained"}]
    mixed = {
        "LaunchTemplate": {
            "LaunchTemplateSpecification": {"LaunchTemplateId": "lt-0aaaaaaaaaaaaaaa1"},
            "Overrides": [{"InstanceType": "t3.small", "ImageId": "ami-0000000000000000a"}],
        }
    }
    with Stubber(autoscaling) as stub:
        stub.add_response(
            "describe_auto_scaling_groups",
            {
                "AutoScalingGroups": [
                    group("web-app-prod", LaunchTemplate={"LaunchTemplateName": "web", "Version": "3"})
                ],
                "NextToken": "n",
            },
            tagged,
        )
        stub.add_response(
            "describe_auto_scaling_groups",
            {"AutoScalingGroups": [group("web-app-prod-exec1", MixedInstancesPolicy=mixed, Tags=role)]},
            {**tagged, "NextToken": "n"},
        )
        stub.add_response(
            "describe_auto_scaling_groups",
            {
                "AutoScalingGroups": [
                    group("web-app-test", LaunchTemplate={"LaunchTemplateId": "lt-0b", "Version": "$Latest"})
                ]
            },
            {"AutoScalingGroupNames": ["web-app-test"], "MaxRecords": 100},
        )

        # When listing the application's groups with both configured names
        groups = FleetReferences(ec2, autoscaling).application_groups("web-app", ["web-app-prod", "web-app-test"])

        # Then both tagged pages were read, and only the untagged configured group was asked for by name
        stub.assert_no_pending_responses()
    assert [(g.name, g.role, g.description) for g in groups] == [
        ("web-app-prod", None, "Auto Scaling group web-app-prod"),
        ("web-app-prod-exec1", "retained", "Auto Scaling group web-app-prod-exec1 (retained)"),
        ("web-app-test", None, "Auto Scaling group web-app-test"),
    ]
    # and each one's launch template and version (none given: $Default), and the AMIs overrides name
    assert [
        [(t.launch_template_id, t.launch_template_name, t.version) for t in g.launch_templates] for g in groups
    ] == [
        [(None, "web", "3")],
        [("lt-0aaaaaaaaaaaaaaa1", None, "$Default")],
        [("lt-0b", None, "$Latest")],
    ]
    assert groups[1].image_ids == ("ami-0000000000000000a",)


def test_launch_template_versions_resolve_ssm_aliases_and_read_every_page() -> None:
    # Given a template whose versions come in two pages
    ec2 = boto3.client("ec2", region_name=REGION)
    request = {"LaunchTemplateId": "lt-0aaaaaaaaaaaaaaa1", "ResolveAlias": True, "MaxResults": 200}
    version = {"LaunchTemplateId": "lt-0aaaaaaaaaaaaaaa1", "DefaultVersion": False}
    with Stubber(ec2) as stub:
        stub.add_response(
            "describe_launch_template_versions",
            {
                "LaunchTemplateVersions": [
                    {**version, "VersionNumber": 2, "LaunchTemplateData": {"ImageId": "ami-00000002"}}
                ],
                "NextToken": "n",
            },
            request,
        )
        stub.add_response(
            "describe_launch_template_versions",
            {"LaunchTemplateVersions": [{**version, "VersionNumber": 1, "LaunchTemplateData": {}}]},
            {**request, "NextToken": "n"},
        )

        # When reading them
        versions = FleetReferences(ec2, object()).launch_template_versions("lt-0aaaaaaaaaaaaaaa1")

        # Then both pages are read, a version without an AMI has image_id None
        stub.assert_no_pending_responses()
    assert [(v.number, v.image_id) for v in versions] == [(2, "ami-00000002"), (1, None)]


def test_deregister_translates_unexpected_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given DeregisterImage fails with an unexpected error
    from shared.errors import ImageDeregistrationFailed

    ec2 = boto3.client("ec2", region_name=REGION)
    with Stubber(ec2) as stub:
        stub.add_client_error("deregister_image", service_error_code="UnauthorizedOperation", service_message="no")

        # When / Then it raises ImageDeregistrationFailed with the code
        with pytest.raises(ImageDeregistrationFailed) as raised:
            Images(ec2).deregister_with_snapshots("ami-00000001")
    assert (raised.value.image_id, raised.value.code) == ("ami-00000001", "UnauthorizedOperation")


def test_prune_skips_deregistration_protected_ami() -> None:
    # Given (all Stubber) an old app image with deregistration protection, one deregistered image still listed,
    # and three newer ones; no launch template versions, instances, refreshes or groups
    ec2 = boto3.client("ec2", region_name=REGION)
    autoscaling = boto3.client("autoscaling", region_name=REGION)
    config = DeployConfig.model_validate(
        {
            "application": "web-app",
            "stages": [
                {"name": "test", "targets": [{"autoScalingGroupName": "g", "launchTemplateId": "lt-0aaaaaaaaaaaaaaa1"}]}
            ],
            "retention": {"keepImages": 1},
        }
    )

    def image(ami: str, day: int, **extra: Any) -> dict[str, Any]:
        return {
            "ImageId": ami,
            "State": "available",
            "CreationDate": f"2025-01-{day:02d}T00:00:00.000Z",
            "Tags": [{"Key": tags.APPLICATION, "Value": "web-app"}, {"Key": tags.PIPELINE, "Value": "app"}],
            **extra,
        }

    listed = [
        image("ami-00000004", 4),
        image("ami-00000003", 3, DeregistrationProtection="disabled"),
        image("ami-00000002", 2, DeregistrationProtection="enabled-with-cooldown"),
        image("ami-00000001", 1, State="deregistered"),
    ]
    with Stubber(ec2) as ec2_stub, Stubber(autoscaling) as as_stub:
        ec2_stub.add_response("describe_images", {"Images": listed}, None)
        ec2_stub.add_response("describe_launch_template_versions", {"LaunchTemplateVersions": []}, None)
        ec2_stub.add_response("describe_instances", {"Reservations": []}, None)
        as_stub.add_response("describe_instance_refreshes", {"InstanceRefreshes": []}, None)
        as_stub.add_response("describe_auto_scaling_groups", {"AutoScalingGroups": []}, None)  # tagged
        as_stub.add_response("describe_auto_scaling_groups", {"AutoScalingGroups": []}, None)  # "g" by name
        ec2_stub.add_response(
            "describe_image_references",
            {"ImageReferences": []},
            {
                "ImageIds": ["ami-00000003"],
                "IncludeAllResourceTypes": True,
                "ResourceTypes": REFERENCE_TYPES,
                "MaxResults": 1000,
            },
        )
        ec2_stub.add_response(
            "deregister_image",
            {"Return": True, "DeleteSnapshotResults": []},
            {"ImageId": "ami-00000003", "DeleteAssociatedSnapshots": True},
        )

        # When pruning
        payload = PruneImagesInput(execution_id="arn:x")
        result = prune_images(payload, config, images=Images(ec2), fleet=FleetReferences(ec2, autoscaling))

        # Then the protected image is skipped (never sent to DeregisterImage), the deregistered one ignored
        ec2_stub.assert_no_pending_responses()
    assert result.images_pruned == ["ami-00000003"]
    assert [(s.ami_id, s.reason) for s in result.skipped] == [
        ("ami-00000002", "deregistration protection is enabled-with-cooldown")
    ]
    assert result.images_kept == ["ami-00000004"]


def test_prune_backlog_larger_than_one_invocation_continues_from_progress_and_keeps_what_is_in_use(
    fleet: Fleet, sim_clock: SimulatedClock
) -> None:
    # Given a backlog: two prunable app images and four older images, one of which a launch template version uses
    bake_history(fleet)
    for n in range(1, 5):
        fleet.bake(f"old{n}", "app", 40 + n)
    fleet.use_in_template(0, "old2", default=False)
    # and half a second left: at DeregisterImage's documented 5 per second, less the margin, two deletions fit
    fleet.expect_refreshes()
    fleet.expect_reference_check(["old3", "old4"])
    fleet.expect_deregister("old3", [("snap-0003", "success")])
    fleet.expect_deregister("old4", [("snap-0004", "success")])

    # When the first invocation runs
    first = fleet.prune(seconds_left=0.5)

    # Then it deleted the two oldest prunable images, paced 1/5 s apart on the step's clock, and is not done
    assert fleet.labels(first["imagesPruned"]) == ["old3", "old4"]
    assert sim_clock.slept == pytest.approx(0.2)
    assert first["done"] is False
    assert first["progress"] == {
        "rounds": 1,
        "imagesPruned": 2,
        "snapshotsDeleted": 2,
        "failures": 0,
        "remaining": 3,
        "referencedAmiIds": [],
    }
    assert "old2" in fleet.labels(first["imagesKept"])

    # Given AWS no longer lists what was deregistered
    for label in ("old3", "old4"):
        fleet.ec2.deregister_image(ImageId=fleet.amis[label])
    fleet.expect_refreshes()
    fleet.expect_reference_check(["app2", "app1", "old1"])
    fleet.expect_deregister("app2", [("snap-0aaa", "success")])
    fleet.expect_deregister("app1", [("snap-0bbb", "success")])
    fleet.expect_deregister("old1")

    # When the state machine calls again with that progress and a whole timeout
    second = fleet.prune(seconds_left=600, progress=first["progress"])

    # Then the rest goes, the image in use stays, and the totals cover both invocations
    assert fleet.labels(second["imagesPruned"]) == ["app1", "app2", "old1"]
    assert "old2" in fleet.labels(second["imagesKept"])
    assert second["done"] is True
    assert second["progress"]["rounds"] == 2
    assert second["progress"]["imagesPruned"] == 5
    assert second["progress"]["snapshotsDeleted"] == 4
    assert second["progress"]["remaining"] == 0


def test_prune_stops_at_its_deadline_and_leaves_the_rest_for_the_next_invocation(
    fleet: Fleet, sim_clock: SimulatedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given two prunable images and a deregistration that takes (simulated) time, so the deadline comes first
    bake_history(fleet)
    fleet.expect_refreshes()
    fleet.expect_reference_check(["app2", "app1"])
    fleet.expect_deregister("app2", [("snap-0aaa", "success")])
    slow = fleet.images.deregister_with_snapshots

    def deregister_taking_a_minute(image_id: str) -> Any:
        sim_clock.sleep(60)
        return slow(image_id)

    monkeypatch.setattr(fleet.images, "deregister_with_snapshots", deregister_taking_a_minute)

    # When the invocation has 100 s (90 s before its margin)
    result = fleet.prune(seconds_left=100)

    # Then it deleted one, stopped before the deadline with the other still registered, and asks to be called again
    assert fleet.labels(result["imagesPruned"]) == ["app2"]
    assert result["done"] is False
    assert result["progress"]["remaining"] == 1
    assert (sim_clock.at - NOW).total_seconds() < 90


def test_prune_ends_the_loop_when_an_invocation_can_delete_nothing(fleet: Fleet, sim_clock: SimulatedClock) -> None:
    # Given two prunable images whose deregistration AWS refuses
    bake_history(fleet)
    fleet.expect_refreshes()
    fleet.expect_reference_check(["app2", "app1"])
    fleet.expect_deregister_error("app2", "UnauthorizedOperation")
    fleet.expect_deregister_error("app1", "UnauthorizedOperation")

    # When pruning
    result = fleet.prune(seconds_left=600)

    # Then both are reported, and the execution does not loop on them
    assert [f["code"] for f in result["failures"]] == ["UnauthorizedOperation"] * 2
    assert result["done"] is True
    assert result["progress"]["remaining"] == 2


def _bases_and_one_old_base(fleet: Fleet) -> None:
    """Four base images (base1 oldest, beyond keepImages 3) and three app images, all on base4."""
    fleet.bake("base1", "base", 40)
    fleet.bake("base2", "base", 30)
    fleet.bake("base3", "base", 20)
    fleet.bake("base4", "base", 10)
    for label, age in (("app1", 9), ("app2", 5), ("app3", 1)):
        fleet.bake(label, "app", age, base="base4")


def test_a_base_referenced_only_by_this_apps_own_bake_recipe_is_still_pruned(fleet: Fleet) -> None:
    # Given the oldest base is the parent of an old per-bake recipe of this application (every bake's recipe
    # names its base AMI, so DescribeImageReferences reports it), and no app image that stays was built on it
    _bases_and_one_old_base(fleet)
    fleet.expect_refreshes()
    recipe = "arn:aws:imagebuilder:eu-west-1:123456789012:image-recipe/web-app-app-0123456789ab/1.0.0"
    fleet.expect_reference_check(
        ["base1"], [{"ImageId": fleet.amis["base1"], "ResourceType": "imagebuilder:ImageRecipe", "Arn": recipe}]
    )
    fleet.expect_deregister("base1")

    # When pruning
    result = fleet.prune()

    # Then that reference keeps nothing: the base goes
    assert fleet.labels(result["imagesPruned"]) == ["base1"]


@pytest.mark.parametrize(
    "recipe",
    [
        "image-recipe/golden-linux/1.0.0",  # someone else's recipe
        "image-recipe/web-app-app-extra/1.0.0",  # not a 12-hex digest: not one of ours
        "image-recipe/web-app-app-app-0123456789ab/1.0.0",  # another application's (named web-app-app) bake
    ],
)
def test_a_base_referenced_by_any_other_recipe_is_kept(fleet: Fleet, recipe: str) -> None:
    # Given the oldest base is the parent of a recipe that is not one of this application's bakes
    _bases_and_one_old_base(fleet)
    fleet.expect_refreshes()
    arn = f"arn:aws:imagebuilder:eu-west-1:123456789012:{recipe}"
    fleet.expect_reference_check(
        ["base1"], [{"ImageId": fleet.amis["base1"], "ResourceType": "imagebuilder:ImageRecipe", "Arn": arn}]
    )

    # When pruning
    result = fleet.prune()

    # Then the base stays, and nothing is deregistered
    assert "base1" in fleet.labels(result["imagesKept"])
    assert fleet.labels(result["imagesPruned"]) == []
