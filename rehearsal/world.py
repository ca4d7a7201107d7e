"""The emulated account a rehearsal starts from, built in moto: AMIs with their snapshots, launch
templates with a version history, Auto Scaling groups with running instances, the lock table, the
notification topic (with a queue subscribed so the harness can read approvals and notifications)
and the build source parameter. The deploy configuration is derived from it (moto makes up ids)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3

from rehearsal.emulated_aws import ACCOUNT, REGION, _backends

APPLICATION = "web-app"
LOCK_TABLE = "web-app-locks"
BUILD_SOURCE_PARAMETER = "/immutable-ami/web-app/build-source"
BASE_PIPELINE_ARN = f"arn:aws:imagebuilder:{REGION}:{ACCOUNT}:image-pipeline/web-app-base"
APP_PIPELINE_ARN = f"arn:aws:imagebuilder:{REGION}:{ACCOUNT}:image-pipeline/web-app-app"
COMMITS = ["1111111", "2222222", "3333333", "4444444", "5555555", "6666666"]


@dataclass
class World:
    config: dict[str, Any]
    topic_arn: str
    queue_url: str
    builder_instance_id: str
    app_images: list[str]  # oldest first
    base_images: list[str]
    templates: dict[str, str]  # group name → launch template id
    env: dict[str, str] = field(default_factory=dict)
    # blue-green targets: configured (seed) group name → its target group ARN
    target_groups: dict[str, str] = field(default_factory=dict)
    # every group of a blue-green target when the rehearsal starts, by name (role, image, desired)
    initial_groups: dict[str, dict[str, Any]] = field(default_factory=dict)


def _image(ec2_backend: Any, instance_id: str, pipeline: str, created: datetime, tags: dict[str, str]) -> str:
    ami = ec2_backend.create_image(instance_id, f"{APPLICATION}-{pipeline}-{created:%Y%m%d%H%M%S}", "seed", [])
    ami.creation_date = created.replace(tzinfo=None)  # moto keeps naive UTC datetimes
    for key, value in {"immutable-ami:application": APPLICATION, "immutable-ami:pipeline": pipeline, **tags}.items():
        ami.add_tag(key, value)
    return str(ami.id)


def build(scenario: dict[str, Any]) -> World:
    """Create the account described by the scenario's `world` (defaults: six app images, versions 1..4)."""
    spec = scenario.get("world", {})
    stages_spec = spec.get("stages", [{"name": "test", "groups": ["web-app-test"]}])
    app_count = int(spec.get("appImages", 6))
    ec2 = boto3.client("ec2", region_name=REGION)
    ec2_backend, _ = _backends()

    subnet_id = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
    builder = ec2.run_instances(ImageId=_seed_image(ec2), MinCount=1, MaxCount=1, SubnetId=subnet_id)["Instances"][0]
    builder_id = builder["InstanceId"]

    start = datetime.now(UTC) - timedelta(days=30)
    base_images = [
        _image(
            ec2_backend,
            builder_id,
            "base",
            start + timedelta(days=i),
            {"immutable-ami:image-build": f"arn:aws:imagebuilder:{REGION}:{ACCOUNT}:image/web-app-base/0.9.0/{i + 1}"},
        )
        for i in range(2)
    ]
    app_images = [
        _image(
            ec2_backend,
            builder_id,
            "app",
            start + timedelta(days=2 + i),
            {"immutable-ami:commit": COMMITS[i % len(COMMITS)], "immutable-ami:base-image": base_images[-1]},
        )
        for i in range(app_count)
    ]
    ec2.terminate_instances(InstanceIds=[builder_id])  # its AMIs stay; a stopped builder would pin its image

    for index in spec.get("strayInstancesOnAppImages", []):
        # An instance outside every group, launched by hand from an old image: prune must keep that image.
        ec2.run_instances(ImageId=app_images[index], MinCount=1, MaxCount=1, SubnetId=subnet_id)

    autoscaling = boto3.client("autoscaling", region_name=REGION)
    templates: dict[str, str] = {}
    target_groups: dict[str, str] = {}
    stages = []
    history = app_images[-4:]  # the template's versions point at the last four images, newest = default
    for stage in stages_spec:
        targets = []
        for group in stage["groups"]:
            lt = ec2.create_launch_template(
                LaunchTemplateName=f"{group}-lt", LaunchTemplateData={"ImageId": history[0], "InstanceType": "t3.micro"}
            )["LaunchTemplate"]
            for image in history[1:]:
                ec2.create_launch_template_version(
                    LaunchTemplateId=lt["LaunchTemplateId"], SourceVersion="1", LaunchTemplateData={"ImageId": image}
                )
            default = str(len(history))
            ec2.modify_launch_template(LaunchTemplateId=lt["LaunchTemplateId"], DefaultVersion=default)
            if stage.get("strategy") == "blue-green":
                target_groups[group] = _blue_green_target(
                    autoscaling, subnet_id, group, lt["LaunchTemplateId"], history, int(stage.get("pastDeployments", 0))
                )
            else:
                autoscaling.create_auto_scaling_group(
                    AutoScalingGroupName=group,
                    LaunchTemplate={"LaunchTemplateId": lt["LaunchTemplateId"], "Version": default},
                    MinSize=2,
                    MaxSize=4,
                    DesiredCapacity=2,
                    VPCZoneIdentifier=subnet_id,
                )
            templates[group] = lt["LaunchTemplateId"]
            targets.append({"autoScalingGroupName": group, "launchTemplateId": lt["LaunchTemplateId"]})
        stages.append(
            {
                "name": stage["name"],
                "approval": bool(stage.get("approval")),
                "waveSize": int(stage.get("waveSize", 1)),
                "strategy": stage.get("strategy", "rolling"),
                "targets": targets,
            }
        )

    boto3.client("dynamodb", region_name=REGION).create_table(
        TableName=LOCK_TABLE,
        KeySchema=[{"AttributeName": "target", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "target", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    for held in spec.get("locksHeld", []):
        boto3.client("dynamodb", region_name=REGION).put_item(
            TableName=LOCK_TABLE,
            Item={
                "target": {"S": held["group"]},
                "holder": {
                    "S": held.get("holder", f"arn:aws:states:{REGION}:{ACCOUNT}:execution:web-app-deploy:other")
                },
                "expiresAt": {"N": str(int(datetime.now(UTC).timestamp()) + int(held.get("seconds", 3600)))},
            },
        )
    sns = boto3.client("sns", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    topic_arn = sns.create_topic(Name="web-app-notifications")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="rehearsal-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"})
    boto3.client("ssm", region_name=REGION).put_parameter(
        Name=BUILD_SOURCE_PARAMETER, Value=json.dumps({"commit": None}), Type="String"
    )

    config: dict[str, Any] = {
        "application": APPLICATION,
        "source": {"type": "codecommit", "repository": "web-app", "branch": "main"},
        "stages": stages,
        "refresh": {"minHealthyPercentage": 90, "instanceWarmupSeconds": 60, **spec.get("refresh", {})},
        "blueGreen": {"healthTimeoutMinutes": 10, **spec.get("blueGreen", {})},
        "retention": {"keepImages": 3, "keepLaunchTemplateVersions": 3, **spec.get("retention", {})},
    }
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    for alarm in config["blueGreen"].get("alarms", []):
        cloudwatch.put_metric_alarm(
            AlarmName=alarm,
            Namespace="AWS/ApplicationELB",
            MetricName="HTTPCode_Target_5XX_Count",
            Statistic="Sum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=10,
            ComparisonOperator="GreaterThanThreshold",
        )
        cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="OK", StateReason="rehearsal: quiet")
    world = World(config, topic_arn, queue_url, builder_id, app_images, base_images, templates)
    world.target_groups = target_groups
    world.initial_groups = groups_of(target_groups)
    world.env = {
        "DEPLOY_CONFIG": json.dumps(config),
        "LOCK_TABLE_NAME": LOCK_TABLE,
        "LOCK_TTL_SECONDS": "10800",
        "WAIT_TTL_SECONDS": "172800",
        "BUILD_SOURCE_PARAMETER": BUILD_SOURCE_PARAMETER,
        "BASE_PIPELINE_ARN": BASE_PIPELINE_ARN,
        "APP_PIPELINE_ARN": APP_PIPELINE_ARN,
    }
    return world


def _blue_green_target(
    autoscaling: Any, subnet_id: str, group: str, template_id: str, history: list[str], past: int
) -> str:
    """A blue-green target: its target group, the seed group, and `past` earlier blue-green deployments.

    Launch template versions 1..4 use `history` (oldest first). With `past` = N, the seed group runs version
    4 - N and was retired first (scaled to zero); deployment k (1..N) made `<group>-past-k` on version 4 - N + k;
    the last one is live, in the target group; the others are retained, scaled to zero. With 0, the seed is live.
    """
    if not 0 <= past < len(history):
        raise ValueError(f"pastDeployments must be 0..{len(history) - 1}, got {past}")
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc_id = ec2.describe_subnets(SubnetIds=[subnet_id])["Subnets"][0]["VpcId"]
    target_group_arn = boto3.client("elbv2", region_name=REGION).create_target_group(
        Name=f"{group}-tg"[:32],
        Protocol="HTTP",
        Port=80,
        VpcId=vpc_id,
        TargetType="instance",
        HealthCheckPath="/health",
    )["TargetGroups"][0]["TargetGroupArn"]
    start = datetime.now(UTC) - timedelta(days=past + 1)
    names = [group] + [f"{group}-past-{k}" for k in range(1, past + 1)]
    for index, name in enumerate(names):
        version = len(history) - past + index
        live = index == len(names) - 1
        tags = {"immutable-ami:application": APPLICATION, "immutable-ami:target": group}
        if index:
            tags["immutable-ami:execution"] = f"arn:aws:states:{REGION}:{ACCOUNT}:execution:web-app-deploy:past-{index}"
        if past:  # once a blue-green deployment has happened, every group of the target carries its role
            tags.update(
                {
                    "immutable-ami:role": "live" if live else "retained",
                    "immutable-ami:role-since": f"{start + timedelta(days=index):%Y-%m-%dT%H:%M:%SZ}",
                    "immutable-ami:image": history[version - 1],
                }
            )
            if not live:
                tags["immutable-ami:capacity"] = "2/4/2"
        autoscaling.create_auto_scaling_group(
            AutoScalingGroupName=name,
            LaunchTemplate={"LaunchTemplateId": template_id, "Version": str(version)},
            MinSize=2 if live else 0,
            MaxSize=4 if live else 0,
            DesiredCapacity=2 if live else 0,
            VPCZoneIdentifier=subnet_id,
            HealthCheckType="ELB",
            HealthCheckGracePeriod=120,
            TargetGroupARNs=[target_group_arn] if live else [],
            Tags=[
                {
                    "ResourceId": name,
                    "ResourceType": "auto-scaling-group",
                    "Key": k,
                    "Value": v,
                    "PropagateAtLaunch": False,
                }
                for k, v in {**tags, "team": "platform"}.items()
            ],
        )
    return str(target_group_arn)


def groups_of(target_groups: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Every Auto Scaling group of the blue-green targets, as the invariants and the report read them."""
    if not target_groups:
        return {}
    autoscaling = boto3.client("autoscaling", region_name=REGION)
    elbv2 = boto3.client("elbv2", region_name=REGION)
    health = {
        arn: {
            d["Target"]["Id"]: d["TargetHealth"]["State"]
            for d in elbv2.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
        }
        for arn in target_groups.values()
    }
    out: dict[str, dict[str, Any]] = {}
    for page in autoscaling.get_paginator("describe_auto_scaling_groups").paginate():
        for g in page["AutoScalingGroups"]:
            name = g["AutoScalingGroupName"]
            tags = {t["Key"]: t["Value"] for t in g.get("Tags", [])}
            seed = next((s for s in target_groups if name == s or tags.get("immutable-ami:target") == s), None)
            if seed is None:
                continue
            instances = [i["InstanceId"] for i in g["Instances"]]
            attached = sorted(g.get("TargetGroupARNs", []))
            out[name] = {
                "target": seed,
                "role": tags.get("immutable-ami:role", "live (untagged seed)" if name == seed else "?"),
                "image": tags.get("immutable-ami:image"),
                "launchTemplateVersion": (g.get("LaunchTemplate") or {}).get("Version"),
                "desired": g["DesiredCapacity"],
                "instances": len(instances),
                "inTargetGroup": bool(attached),
                "healthyTargets": sum(
                    1 for arn in attached for i in instances if health.get(arn, {}).get(i) == "healthy"
                ),
            }
    return out


def _seed_image(ec2: Any) -> str:
    """Any image moto knows, to launch the stand-in build instance from."""
    return str(ec2.register_image(Name="rehearsal-seed", RootDeviceName="/dev/xvda", Architecture="x86_64")["ImageId"])
