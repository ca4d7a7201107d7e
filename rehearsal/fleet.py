"""A blue-green target in the emulated account (its target group, seed group and earlier deployments), and
every group of the blue-green targets as the invariants and the report read them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3

from rehearsal.emulated_aws import REGION


def blue_green_target(
    autoscaling: Any,
    subnet_id: str,
    app: str,
    group: str,
    template_id: str,
    history: list[str],
    past: int,
    execution_prefix: str,
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
        tags = {"immutable-ami:application": app, "immutable-ami:target": group}
        if index:
            tags["immutable-ami:execution"] = f"{execution_prefix}:past-{index}"
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
