"""`Lookup` over moto's in-memory backends (moto 5.2.5), read directly: a boto3 call would go through the
rehearsal's hook again."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rehearsal.iam.facts import (
    GroupFacts,
    ImageFacts,
    ProfileFacts,
    SecretFacts,
    SnapshotFacts,
    TemplateFacts,
    UnresolvedCallError,
    VersionFacts,
    Where,
    _split,
    _tag_list,
)


# --- The emulated account: moto's in-memory backends (moto 5.2.5) ------------------------------------------
def _moto_tags(resource: Any) -> dict[str, str]:
    return {str(t["key"]): str(t["value"]) for t in resource.get_tags()}  # EC2 describe_tags rows


def _version_facts(data: Mapping[str, Any]) -> VersionFacts:
    interfaces = data.get("NetworkInterfaces") or []
    profile = data.get("IamInstanceProfile") or {}
    return VersionFacts(
        image_id=data.get("ImageId") or None,
        subnet_ids=tuple(i["SubnetId"] for i in interfaces if i.get("SubnetId")),
        security_group_ids=tuple(
            dict.fromkeys([*data.get("SecurityGroupIds", []), *(g for i in interfaces for g in i.get("Groups", []))])
        ),
        instance_profile=profile.get("Arn") or profile.get("Name"),
        key_name=data.get("KeyName"),
        tag_specifications={s["ResourceType"]: _tag_list(s.get("Tags", [])) for s in data.get("TagSpecifications", [])},
    )


class MotoLookup:
    """`Lookup` over moto's backends for `where`'s account and region, read directly (never through boto3)."""

    def __init__(self, where: Where) -> None:
        self._where = where

    def _backend(self, module: str, name: str, region: str | None = None) -> Any:
        import importlib

        backends = getattr(importlib.import_module(f"moto.{module}.models"), name)
        return backends[self._where.account][region or self._where.region]

    def image(self, image_id: str) -> ImageFacts | None:
        ami = self._backend("ec2", "ec2_backends").amis.get(image_id)
        if ami is None:
            return None
        snapshots = tuple(
            m["Ebs"]["SnapshotId"] for m in ami.block_device_mappings if m.get("Ebs", {}).get("SnapshotId")
        )
        return ImageFacts(
            tags=_moto_tags(ami),
            snapshot_ids=snapshots,
            owner=ami.owner_alias if ami.owner_alias in ("amazon", "aws-marketplace") else ami.owner_id,
            public=bool(ami.is_public),
            image_type=ami.image_type,
            # moto says "standard" for the EBS-backed images it makes (each has an EBS snapshot): EC2 says "ebs"
            root_device_type=ami.root_device_type if ami.root_device_type == "instance-store" else "ebs",
        )

    def snapshot(self, snapshot_id: str) -> SnapshotFacts | None:
        found = self._backend("ec2", "ec2_backends").snapshots.get(snapshot_id)
        return SnapshotFacts(tags=_moto_tags(found), owner=found.owner_id) if found is not None else None

    def group(self, name: str) -> GroupFacts | None:
        group = self._backend("autoscaling", "autoscaling_backends").autoscaling_groups.get(name)
        if group is None:
            return None
        spec = (
            group.launch_template
            or ((group.mixed_instances_policy or {}).get("LaunchTemplate") or {}).get("LaunchTemplateSpecification")
            or {}
        )
        return GroupFacts(
            group_id=group.arn.split(":")[6],
            tags={str(t["Key"]): str(t.get("Value", "")) for t in group.tags},
            launch_template_id=spec.get("LaunchTemplateId"),
            launch_template_version=getattr(group, "launch_template_version", None),
            subnet_ids=_split(group.vpc_zone_identifier),
        )

    def launch_template(self, template_id: str) -> TemplateFacts | None:
        template = self._backend("ec2", "ec2_backends").launch_templates.get(template_id)
        if template is None:
            return None
        return TemplateFacts(
            template_id=template.id,
            tags=_moto_tags(template),
            default_version=template.default_version_number,
            versions={v.number: _version_facts(v.data) for v in template.versions},
        )

    def launch_template_named(self, name: str) -> TemplateFacts | None:
        template_id = self._backend("ec2", "ec2_backends").launch_template_name_to_ids.get(name)
        return self.launch_template(template_id) if template_id else None

    def default_security_group(self, subnet_id: str) -> str | None:
        ec2 = self._backend("ec2", "ec2_backends")
        subnet = next((s for zone in ec2.subnets.values() for s in zone.values() if s.id == subnet_id), None)
        groups = ec2.groups.get(subnet.vpc_id, {}).values() if subnet is not None else ()
        return next((g.id for g in groups if g.name == "default"), None)

    def instance_profile(self, name_or_arn: str) -> ProfileFacts | None:
        iam = self._backend("iam", "iam_backends", region=self._where.partition)
        profile = iam.instance_profiles.get(name_or_arn.rsplit("/", 1)[-1])
        return ProfileFacts(arn=profile.arn, role_arns=tuple(r.arn for r in profile.roles)) if profile else None

    def topic_kms_key(self, topic_arn: str) -> str | None:
        region = topic_arn.split(":")[3]
        topic = self._backend("sns", "sns_backends", region=region).topics.get(topic_arn)
        key_id = topic.kms_master_key_id if topic is not None else ""
        if not key_id:
            return None
        kms = self._backend("kms", "kms_backends", region=region)
        try:
            return str(kms.keys[kms.any_id_to_key_id(key_id)].arn)
        except (KeyError, AttributeError) as exc:  # e.g. alias/aws/sns, which moto does not create
            raise UnresolvedCallError(f"the KMS key {key_id!r} of {topic_arn} is not in the account") from exc

    def secret(self, secret_id: str) -> SecretFacts | None:
        found = self._backend("secretsmanager", "secretsmanager_backends").secrets.get(secret_id)
        return SecretFacts(arn=found.arn, tags=_tag_list(found.tags or [])) if found is not None else None
