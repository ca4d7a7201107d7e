"""The emulated account a rehearsal starts from: the user's configuration, deployed as the template says.

From the template: the lock table (its key schema), the notification topic (a queue subscribed so the
harness reads approvals and notifications), all by the names CloudFormation
would give them (rehearsal.intrinsics). From the configuration: every stage's targets, each with its
configured Auto Scaling group name and its configured launch template id (moto is made to take the id),
a version history on the newest app images, running instances, and for a blue-green target its target
group and seed group. The user's alarms exist, quiet. The scenario only perturbs this world: more or
fewer images (`baseImages: 0, appImages: 0`: a fresh account, whose launch templates use an image made by hand),
the commit each stage runs (`deployedCommits`), earlier blue-green deployments, stray instances, locks held by
another execution.
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3

from rehearsal.emulated_aws import _backends
from rehearsal.fleet import blue_green_target, groups_of
from rehearsal.intrinsics import Resolver
from rehearsal.scenarios import ScenarioError

COMMITS = [d * 40 for d in "123456"]  # full SHAs, as the commit tag of every baked image holds them
HISTORY = 4  # launch template versions 1..4 use the four newest app images; 4 is the default
FULL_SHA = re.compile(r"^[0-9a-f]{40}$")


@dataclass
class World:
    config: dict[str, Any]  # the deploy configuration, as the functions receive it
    application: str
    lock_table: str
    topic_arn: str
    queue_url: str
    builder_instance_id: str
    app_images: list[str]  # oldest first
    base_images: list[str]
    templates: dict[str, str]  # group name → launch template id (the configured one)
    target_groups: dict[str, str] = field(default_factory=dict)  # blue-green seed group → its target group ARN
    initial_groups: dict[str, dict[str, Any]] = field(default_factory=dict)  # blue-green groups at the start

    def targets(self) -> list[dict[str, Any]]:
        """Every configured target with its stage, strategy and wave: the JSON's `targets`."""
        out = []
        for stage in self.config["stages"]:
            wave_size = int(stage.get("waveSize", 1))
            for index, target in enumerate(stage["targets"]):
                out.append(
                    {
                        "stage": stage["name"],
                        "strategy": stage.get("strategy", "rolling"),
                        "wave": index // wave_size + 1,
                        "autoScalingGroupName": target["autoScalingGroupName"],
                        "launchTemplateId": target["launchTemplateId"],
                        "emulatedLaunchTemplateId": self.templates[target["autoScalingGroupName"]],
                    }
                )
        return out


def _image(ec2_backend: Any, instance_id: str, app: str, pipeline: str, created: datetime, tags: dict[str, str]) -> str:
    ami = ec2_backend.create_image(instance_id, f"{app}-{pipeline}-{created:%Y%m%d%H%M%S}", "seed", [])
    ami.creation_date = created.replace(tzinfo=None)  # moto keeps naive UTC datetimes
    # Tagged as check_image_build tags a new AMI and its snapshots (the prune may delete only tagged snapshots).
    snapshot = getattr(ami, "ebs_snapshot", None)
    for key, value in {"immutable-ami:application": app, "immutable-ami:pipeline": pipeline, **tags}.items():
        ami.add_tag(key, value)
        if snapshot is not None:
            snapshot.add_tag(key, value)
    return str(ami.id)


def old_app_images(
    ec2_backend: Any, instance_id: str, app: str, count: int, before: datetime, base_image: str
) -> list[str]:
    """`world.oldAppImages: N`: a backlog of N app images older than the world's history (one a minute, the newest
    a minute before `before`), each with its snapshot, tagged as the pipeline tags them, built on `base_image`.
    Oldest first.

    Their tags (and their snapshots') are read straight from moto's tag table: moto's own lookup scans every tag
    of the region for each resource, which makes DescribeImages and each DeregisterImage's IAM check quadratic in
    N (minutes for 5,000 images)."""
    created = []
    for index in range(count):
        when = before - timedelta(minutes=count - index)
        image_id = _image(ec2_backend, instance_id, app, "app", when, {"immutable-ami:base-image": base_image})
        ami = ec2_backend.amis[image_id]
        ami.get_tags = functools.partial(_tags_of, ec2_backend, image_id, "image")
        snapshot = getattr(ami, "ebs_snapshot", None)
        if snapshot is not None:
            snapshot.get_tags = functools.partial(_tags_of, ec2_backend, snapshot.id, "snapshot")
        created.append(image_id)
    return created


def _tags_of(ec2_backend: Any, resource_id: str, resource_type: str) -> list[dict[str, str]]:
    return [
        {"resource_id": resource_id, "key": key, "value": value, "resource_type": resource_type}
        for key, value in ec2_backend.tags.get(resource_id, {}).items()
    ]


@contextlib.contextmanager
def configured_launch_template_id(template_id: str) -> Iterator[None]:
    """moto makes up launch template ids; the configured id is what the functions call with, so moto takes it."""
    from moto.ec2.models import launch_templates

    original = launch_templates.random_launch_template_id
    launch_templates.random_launch_template_id = lambda: template_id
    try:
        yield
    finally:
        launch_templates.random_launch_template_id = original


def build(resolver: Resolver, scenario: dict[str, Any]) -> World:
    """The configured account, perturbed by the scenario's `world`."""
    artifact = resolver.artifact
    config = artifact.deploy_config
    app = str(config["application"])
    spec = scenario.get("world", {})
    region = resolver.account.region
    ec2 = boto3.client("ec2", region_name=region)
    ec2_backend, _ = _backends()

    subnet_id = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
    seed = ec2.register_image(Name="rehearsal-seed", RootDeviceName="/dev/xvda", Architecture="x86_64")["ImageId"]
    builder_id = ec2.run_instances(ImageId=seed, MinCount=1, MaxCount=1, SubnetId=subnet_id)["Instances"][0][
        "InstanceId"
    ]
    start = datetime.now(UTC) - timedelta(days=30)
    base_images = [
        _image(
            ec2_backend,
            builder_id,
            app,
            "base",
            start + timedelta(days=i),
            {"immutable-ami:image-build": resolver.account.arn("imagebuilder", f"image/{app}-base/0.9.0/{i + 1}")},
        )
        for i in range(int(spec.get("baseImages", 2)))  # `world.baseImages: 0`: a fresh account, no base image yet
    ]
    if not base_images and (int(spec.get("appImages", 6)) or spec.get("oldAppImages") or spec.get("deployedCommits")):
        raise ScenarioError("world: app images are built on a base image; with baseImages 0 give appImages 0 too")
    app_images = [
        _image(
            ec2_backend,
            builder_id,
            app,
            "app",
            start + timedelta(days=2 + i),
            {"immutable-ami:commit": COMMITS[i % len(COMMITS)], "immutable-ami:base-image": base_images[-1]},
        )
        for i in range(int(spec.get("appImages", 6)))
    ]
    if spec.get("oldAppImages"):  # a backlog older than the history above (old_app_images)
        app_images = (
            old_app_images(ec2_backend, builder_id, app, int(spec["oldAppImages"]), start, base_images[0]) + app_images
        )
    history = app_images[-HISTORY:]
    stage_history: dict[str, list[str]] = {}
    if spec.get("deployedCommits"):  # each stage's targets run an app image of the stage's own commit
        newest = start + timedelta(days=2 + int(spec.get("appImages", 6)))  # a day after the history's newest
        stage_history, extra = _deployed_commits(
            config, spec["deployedCommits"], history, ec2_backend, builder_id, app, newest, base_images
        )
        app_images += extra
    if not history:
        # No app image yet (a fresh account): the launch templates use an image made outside the pipeline.
        history = [
            ec2.register_image(Name=f"{app}-made-by-hand", RootDeviceName="/dev/xvda", Architecture="x86_64")["ImageId"]
        ]
    ec2.terminate_instances(InstanceIds=[builder_id])  # its AMIs stay; a stopped builder would pin its image
    for index in spec.get("strayInstancesOnAppImages", []):
        # An instance outside every group, launched by hand from an old image: prune must keep that image.
        ec2.run_instances(ImageId=app_images[index], MinCount=1, MaxCount=1, SubnetId=subnet_id)

    # Executions of this state machine are named arn:...:execution:<state machine name>:<execution name>.
    machine = resolver.physical_name(artifact.state_machine, 80)
    execution_prefix = resolver.account.arn("states", f"execution:{machine}")
    templates, target_groups = _fleet(config, spec, app, history, subnet_id, execution_prefix, stage_history)
    lock_table = _stack_resources(resolver)
    topic_arn = resolver.ref(_only(artifact.of_type("AWS::SNS::Topic"), "AWS::SNS::Topic"))
    queue_url = _inbox(topic_arn, region)
    for held in spec.get("locksHeld", []):
        boto3.client("dynamodb", region_name=region).put_item(
            TableName=lock_table,
            Item={
                "target": {"S": held["group"]},
                "holder": {"S": held.get("holder", f"{execution_prefix}:other")},
                "expiresAt": {"N": str(int(datetime.now(UTC).timestamp()) + int(held.get("seconds", 3600)))},
            },
        )
    _quiet_alarms(
        [*config.get("blueGreen", {}).get("alarms", []), *config.get("refresh", {}).get("alarms", [])], region
    )
    world = World(config, app, lock_table, topic_arn, queue_url, builder_id, app_images, base_images, templates)
    world.target_groups = target_groups
    world.initial_groups = groups_of(target_groups)
    return world


def _deployed_commits(
    config: dict[str, Any],
    commits: dict[str, str],
    history: list[str],
    ec2_backend: Any,
    instance_id: str,
    app: str,
    first: datetime,
    base_images: list[str],
) -> tuple[dict[str, list[str]], list[str]]:
    """`world.deployedCommits: {stage: commit}`: one app image per distinct commit, newer than the world's history
    and built on its newest base; every target of the stage runs its commit's image (its default version, the newest
    of its history). Returns each such stage's launch template history and the images made, oldest first."""
    stages = {str(s["name"]) for s in config["stages"]}
    unknown = sorted(set(commits) - stages)
    if unknown:
        raise ScenarioError(f"world.deployedCommits: {unknown} are not configured stages ({', '.join(sorted(stages))})")
    bad = sorted(c for c in commits.values() if not FULL_SHA.match(str(c)))
    if bad:
        raise ScenarioError(f"world.deployedCommits: commits must be full 40-hex SHAs, got {bad}")
    images: dict[str, str] = {}
    for commit in dict.fromkeys(commits.values()):
        when = first + timedelta(days=len(images))
        tags = {"immutable-ami:commit": commit, "immutable-ami:base-image": base_images[-1]}
        images[commit] = _image(ec2_backend, instance_id, app, "app", when, tags)
    return {stage: [*history[:-1], images[commit]] for stage, commit in commits.items()}, list(images.values())


def _fleet(
    config: dict[str, Any],
    spec: dict[str, Any],
    app: str,
    default_history: list[str],
    subnet_id: str,
    execution_prefix: str,
    stage_history: dict[str, list[str]] | None = None,
) -> tuple[dict[str, str], dict[str, str]]:
    region = execution_prefix.split(":")[3]
    ec2 = boto3.client("ec2", region_name=region)
    autoscaling = boto3.client("autoscaling", region_name=region)
    templates: dict[str, str] = {}
    target_groups: dict[str, str] = {}
    past = int(spec.get("pastDeployments", 0))
    for stage in config["stages"]:
        history = (stage_history or {}).get(stage["name"], default_history)
        for target in stage["targets"]:
            group, template_id = target["autoScalingGroupName"], target["launchTemplateId"]
            with configured_launch_template_id(template_id):
                ec2.create_launch_template(
                    LaunchTemplateName=f"{group}-lt",
                    LaunchTemplateData={"ImageId": history[0], "InstanceType": "t3.micro"},
                )
            for image in history[1:]:
                ec2.create_launch_template_version(
                    LaunchTemplateId=template_id, SourceVersion="1", LaunchTemplateData={"ImageId": image}
                )
            default = str(len(history))
            ec2.modify_launch_template(LaunchTemplateId=template_id, DefaultVersion=default)
            templates[group] = template_id
            if stage.get("strategy") == "blue-green":
                target_groups[group] = blue_green_target(
                    autoscaling, subnet_id, app, group, template_id, history, past, execution_prefix
                )
                continue
            autoscaling.create_auto_scaling_group(
                AutoScalingGroupName=group,
                LaunchTemplate={"LaunchTemplateId": template_id, "Version": default},
                MinSize=2,
                MaxSize=4,
                DesiredCapacity=2,
                VPCZoneIdentifier=subnet_id,
            )
    return templates, target_groups


def _only(resources: dict[str, Any], type_name: str) -> str:
    if len(resources) != 1:
        raise RuntimeError(f"the template has {len(resources)} {type_name} resources; the rehearsal expects one")
    return next(iter(resources))


def _stack_resources(resolver: Resolver) -> str:
    """The stack's own stateful resources, made from their template properties; returns the lock table's name."""
    artifact, region = resolver.artifact, resolver.account.region
    table_id = _only(artifact.of_type("AWS::DynamoDB::Table"), "AWS::DynamoDB::Table")
    table = artifact.resources[table_id]["Properties"]
    name = resolver.ref(table_id)
    boto3.client("dynamodb", region_name=region).create_table(
        TableName=name,
        KeySchema=table["KeySchema"],
        AttributeDefinitions=table["AttributeDefinitions"],
        BillingMode=table.get("BillingMode", "PROVISIONED"),
        **(
            {}
            if table.get("BillingMode") == "PAY_PER_REQUEST"
            else {"ProvisionedThroughput": table["ProvisionedThroughput"]}
        ),
    )
    for logical_id, parameter in artifact.of_type("AWS::SSM::Parameter").items():
        properties = resolver.resolve(parameter["Properties"], logical_id)
        boto3.client("ssm", region_name=region).put_parameter(
            Name=resolver.ref(logical_id), Value=properties["Value"], Type=properties.get("Type", "String")
        )
    topic_id = _only(artifact.of_type("AWS::SNS::Topic"), "AWS::SNS::Topic")
    topic = artifact.resources[topic_id]["Properties"]
    attributes = {}
    if "KmsMasterKeyId" in topic:  # server-side encryption: publishing needs the key (SNS Developer Guide)
        attributes["KmsMasterKeyId"] = _key(resolver, topic["KmsMasterKeyId"])
    boto3.client("sns", region_name=region).create_topic(
        Name=resolver.physical_name(topic_id, 256), Attributes=attributes
    )
    return name


def _key(resolver: Resolver, reference: Any) -> str:
    """The template's KMS key (a Ref or GetAtt of its AWS::KMS::Key) in moto, with the id the resolver gives it."""
    logical_id = reference.get("Ref") or reference.get("Fn::GetAtt", [None])[0] if isinstance(reference, dict) else None
    if logical_id not in resolver.artifact.of_type("AWS::KMS::Key"):
        raise RuntimeError(f"the topic's KmsMasterKeyId {reference!r} is not a key of this stack")
    from moto.kms.models import kms_backends

    account = resolver.account
    created = boto3.client("kms", region_name=account.region).create_key(Description=logical_id)["KeyMetadata"]
    backend = kms_backends[account.account][account.region]
    key = backend.keys.pop(created["KeyId"])
    key.id = resolver.ref(logical_id)
    key.arn = resolver.get_att(logical_id, "Arn")
    backend.keys[key.id] = key
    return str(key.arn)


def _inbox(topic_arn: str, region: str) -> str:
    """A queue on the topic: the harness reads approvals and notifications from it (as a subscriber would)."""
    sns = boto3.client("sns", region_name=region)
    sqs = boto3.client("sqs", region_name=region)
    queue_url = sqs.create_queue(QueueName="rehearsal-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"})
    return str(queue_url)


def _quiet_alarms(names: list[str], region: str) -> None:
    cloudwatch = boto3.client("cloudwatch", region_name=region)
    for alarm in names:
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


def resolve_images(value: Any, world: Any) -> Any:
    """Scenarios name images the world creates: "@app-image:-1" is the newest app AMI, "@base-image:0" the oldest."""
    if isinstance(value, dict):
        return {k: resolve_images(v, world) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_images(v, world) for v in value]
    if isinstance(value, str) and value.startswith(("@app-image:", "@base-image:")):
        kind, index = value[1:].split(":")
        return (world.app_images if kind == "app-image" else world.base_images)[int(index)]
    return value
