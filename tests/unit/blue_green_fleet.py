"""A blue-green target in moto for the blue-green steps' suites (test_create_green_group.py, test_check_green_group.py,
test_shift_traffic.py, test_discard_green.py, test_retire_groups.py): a VPC subnet, a launch template with two
versions (AMI_OLD, AMI_NEW), two target groups, and helpers to create and read Auto Scaling groups.

Use inside `mock_aws()` (the `fleet` fixture of each suite does); `config` holds the target in a blue-green
stage, with the moto-generated launch template id.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import boto3

from shared import tags
from shared.aws.alarms import Alarms
from shared.aws.elbv2 import LoadBalancing
from shared.aws.groups import BlueGreenGroups
from shared.aws.launch_templates import LaunchTemplates
from shared.config import DeployConfig, Target
from tests.conftest import REGION, SAMPLE_DEPLOY_CONFIG

APP = "web-app"
SEED = "web-app-test"
EXECUTION = "arn:aws:states:eu-west-1:123456789012:execution:web-app-deploy:run-2"
OTHER_EXECUTION = "arn:aws:states:eu-west-1:123456789012:execution:web-app-deploy:run-1"
GREEN = f"{SEED}-run-2"  # green_group_name(SEED, EXECUTION)
AMI_OLD = "ami-0aaaaaaaaaaaaaaa1"  # launch template version 1
AMI_NEW = "ami-0aaaaaaaaaaaaaaa2"  # launch template version 2
NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
# The sample's prod stage, left rolling: blue-green steps must refuse its target.
PROD_STAGE = {
    "name": "prod",
    "approval": True,
    "targets": [{"autoScalingGroupName": "web-app-prod", "launchTemplateId": "lt-0bbbbbbbbbbbbbbb2"}],
}


def blue_green_config(template_id: str, **overrides: Any) -> DeployConfig:
    """SAMPLE_DEPLOY_CONFIG with the test stage in blue-green on SEED/template_id, plus top-level overrides."""
    raw = dict(SAMPLE_DEPLOY_CONFIG)
    raw["stages"] = [
        {
            "name": "test",
            "strategy": "blue-green",
            "targets": [{"autoScalingGroupName": SEED, "launchTemplateId": template_id}],
        },
        PROD_STAGE,
    ]
    raw.update(overrides)
    return DeployConfig.model_validate(raw)


@dataclass
class Fleet:
    subnet: str
    template_id: str
    tg_web: str
    tg_api: str
    config: DeployConfig
    asg: Any = field(default_factory=lambda: boto3.client("autoscaling", region_name=REGION))
    ec2: Any = field(default_factory=lambda: boto3.client("ec2", region_name=REGION))
    elbv2: Any = field(default_factory=lambda: boto3.client("elbv2", region_name=REGION))
    cloudwatch: Any = field(default_factory=lambda: boto3.client("cloudwatch", region_name=REGION))

    @property
    def target(self) -> Target:
        return self.config.stages[0].targets[0]

    @property
    def groups(self) -> BlueGreenGroups:
        return BlueGreenGroups(self.asg)

    @property
    def templates(self) -> LaunchTemplates:
        return LaunchTemplates(self.ec2)

    @property
    def load_balancing(self) -> LoadBalancing:
        return LoadBalancing(self.elbv2)

    @property
    def alarms(self) -> Alarms:
        return Alarms(self.cloudwatch)

    def with_config(self, **overrides: Any) -> Fleet:
        self.config = blue_green_config(self.template_id, **overrides)
        return self

    def create_group(
        self,
        name: str,
        *,
        version: str = "1",
        sizes: tuple[int, int, int] = (1, 4, 2),
        target_groups: Sequence[str] | None = None,
        group_tags: Mapping[str, str] | None = None,
        **settings: Any,
    ) -> None:
        low, high, desired = sizes
        self.asg.create_auto_scaling_group(
            AutoScalingGroupName=name,
            MinSize=low,
            MaxSize=high,
            DesiredCapacity=desired,
            VPCZoneIdentifier=self.subnet,
            LaunchTemplate={"LaunchTemplateId": self.template_id, "Version": version},
            TargetGroupARNs=list(target_groups if target_groups is not None else [self.tg_web, self.tg_api]),
            Tags=[{"Key": k, "Value": v, "PropagateAtLaunch": False} for k, v in (group_tags or {}).items()],
            **settings,
        )

    def create_ours(
        self,
        name: str,
        role: str,
        *,
        since: str,
        image: str = AMI_OLD,
        execution: str = OTHER_EXECUTION,
        version: str = "1",
        sizes: tuple[int, int, int] = (1, 4, 2),
        target_groups: Sequence[str] | None = None,
        extra_tags: Mapping[str, str] | None = None,
    ) -> None:
        """A group as this pipeline leaves it, with our tags."""
        self.create_group(
            name,
            version=version,
            sizes=sizes,
            target_groups=target_groups,
            group_tags={
                tags.APPLICATION: APP,
                tags.TARGET: SEED,
                tags.EXECUTION: execution,
                tags.IMAGE: image,
                tags.ROLE: role,
                tags.ROLE_SINCE: since,
                **(extra_tags or {}),
            },
        )

    def describe(self, name: str) -> dict[str, Any] | None:
        found = self.asg.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"]
        return found[0] if found else None

    def tags_of(self, name: str) -> dict[str, str]:
        group = self.describe(name)
        assert group is not None, f"{name} does not exist"
        return {t["Key"]: t["Value"] for t in group["Tags"]}

    def sizes(self, name: str) -> tuple[int, int, int]:
        group = self.describe(name)
        assert group is not None, f"{name} does not exist"
        return group["MinSize"], group["MaxSize"], group["DesiredCapacity"]

    def attached(self, name: str) -> list[str]:
        response = self.asg.describe_load_balancer_target_groups(AutoScalingGroupName=name)
        return sorted(a["LoadBalancerTargetGroupARN"] for a in response["LoadBalancerTargetGroups"])

    def names(self) -> list[str]:
        return sorted(g["AutoScalingGroupName"] for g in self.asg.describe_auto_scaling_groups()["AutoScalingGroups"])


def build_fleet() -> Fleet:
    """The VPC, launch template (v1: AMI_OLD, v2: AMI_NEW, default v1) and target groups, no group yet."""
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24", AvailabilityZone=f"{REGION}a")["Subnet"]["SubnetId"]
    template_id = ec2.create_launch_template(
        LaunchTemplateName="web-app", LaunchTemplateData={"ImageId": AMI_OLD, "InstanceType": "t3.micro"}
    )["LaunchTemplate"]["LaunchTemplateId"]
    ec2.create_launch_template_version(
        LaunchTemplateId=template_id, SourceVersion="1", LaunchTemplateData={"ImageId": AMI_NEW}
    )
    elbv2 = boto3.client("elbv2", region_name=REGION)
    tg_web, tg_api = (
        elbv2.create_target_group(Name=name, Protocol="HTTP", Port=80, VpcId=vpc)["TargetGroups"][0]["TargetGroupArn"]
        for name in ("web", "api")
    )
    return Fleet(
        subnet=subnet,
        template_id=template_id,
        tg_web=tg_web,
        tg_api=tg_api,
        config=blue_green_config(template_id),
    )
