"""IAM requests of the EC2 calls, and of launching from a launch template on Auto Scaling's behalf."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from rehearsal.iam import AuthorizationRequest
from rehearsal.iam.facts import (
    LAUNCHED_TYPES,
    TAGS_IN_REQUEST,
    Context,
    GroupFacts,
    Mapper,
    TemplateFacts,
    UnmappedCallError,
    UnresolvedCallError,
    VersionFacts,
    _Call,
    _parameter_arn,
    _request_tags,
    _resource_tags,
    _split,
    _tag_list,
)

# --- Amazon EC2 ------------------------------------------------------------------------------------------
# SAR: "Actions, resources, and condition keys for Amazon EC2",
# https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonec2.html
# Describe* rows have no resource type ("*"). Not modelled: ec2:ManagedResourceOperator, ec2:Attribute(/*),
# instance keys other than ec2:InstanceProfile (ec2:InstanceType, metadata options...), subnet/security-group
# tags, snapshot keys other than id, owner and tags. ec2:IsLaunchTemplateResource: launches from a template only
# (below).
IMAGE_KEYS = frozenset({"aws:ResourceTag/*", "ec2:ResourceTag/*", "ec2:ImageID"})
IMAGE_FACT_KEYS = IMAGE_KEYS | {"ec2:Owner", "ec2:Public", "ec2:ImageType", "ec2:RootDeviceType"}
EC2_TAG_KEYS = frozenset({"aws:ResourceTag/*", "ec2:ResourceTag/*"})


def _image(c: _Call, image_id: str) -> tuple[str, Context, frozenset[str]]:
    facts = c.lookup.image(image_id)
    ctx: Context = {"ec2:ImageID": (image_id,)}
    if facts is None:  # no such image: it has no tags, and nothing else is known of it
        return c.arn("ec2", f"image/{image_id}", owned=False), ctx, IMAGE_KEYS
    ctx |= {
        "ec2:Owner": (facts.owner,),
        "ec2:Public": ("true" if facts.public else "false",),
        "ec2:ImageType": (facts.image_type,),
        "ec2:RootDeviceType": (facts.root_device_type,),
        **_resource_tags(facts.tags, "aws", "ec2"),
    }
    return c.arn("ec2", f"image/{image_id}", owned=False), ctx, IMAGE_FACT_KEYS


def _snapshot(c: _Call, snapshot_id: str) -> tuple[str, Context, frozenset[str]]:
    facts, ctx = c.lookup.snapshot(snapshot_id), Context({"ec2:SnapshotID": (snapshot_id,)})
    if facts is not None:
        ctx |= {"ec2:Owner": (facts.owner,), **_resource_tags(facts.tags, "aws", "ec2")}
    keys = EC2_TAG_KEYS | {"ec2:SnapshotID"} | ({"ec2:Owner"} if facts else set())
    return c.arn("ec2", f"snapshot/{snapshot_id}", owned=False), ctx, keys


def _template(c: _Call, spec: Mapping[str, Any]) -> tuple[str, TemplateFacts | None]:
    """The id and facts of the template LaunchTemplateId or LaunchTemplateName names (facts None when unknown)."""
    template_id, name = spec.get("LaunchTemplateId"), spec.get("LaunchTemplateName")
    found = c.lookup.launch_template(template_id) if template_id else c.lookup.launch_template_named(name or "")
    if found is None and not template_id:
        raise UnresolvedCallError(f"{c.operation}: launch template {name!r} is not in the account")
    return (found.template_id if found else str(template_id)), found


def _ssm_alias(c: _Call, image_id: str | None, why: str) -> list[AuthorizationRequest]:
    """ssm:GetParameters, a SAR dependent action of launch template calls, when the AMI is "resolve:ssm:NAME"."""
    if not (image_id or "").startswith("resolve:ssm:"):
        return []
    name = (image_id or "").removeprefix("resolve:ssm:")
    name = ":".join(name.split(":")[:6]) if name.startswith("arn:") else name.split(":")[0]  # drop :version/:label
    return [c.request("ssm:GetParameters", _parameter_arn(c, name), why=why)]


def _on_template(action: str) -> Mapper:
    def mapper(c: _Call) -> list[AuthorizationRequest]:
        template_id, template = _template(c, c.params)
        tags = _resource_tags(template.tags, "aws", "ec2") if template else {}
        image = (c.params.get("LaunchTemplateData") or {}).get("ImageId")
        why = f"{c.operation} resolves the AMI parameter {image!r}"
        return [c.request(action, c.arn("ec2", f"launch-template/{template_id}"), tags, EC2_TAG_KEYS)] + (
            _ssm_alias(c, image, why) if action == "ec2:CreateLaunchTemplateVersion" else []
        )

    return mapper


def _describe_template_versions(c: _Call) -> list[AuthorizationRequest]:
    out = [c.request("ec2:DescribeLaunchTemplateVersions")]
    template = _template(c, c.params)[1] if c.params.get("ResolveAlias") else None
    if template is not None:
        for spec in c.params.get("Versions") or [str(n) for n in template.versions]:
            version = template.version(spec)
            out += _ssm_alias(c, version.image_id if version else None, "ResolveAlias resolves the AMI parameter")
    return out


def _deregister_image(c: _Call) -> list[AuthorizationRequest]:
    image_id = str(c.params["ImageId"])
    arn, ctx, keys = _image(c, image_id)
    out, facts = [c.request("ec2:DeregisterImage", arn, ctx, keys)], c.lookup.image(image_id)
    if c.params.get("DeleteAssociatedSnapshots") and facts is not None:
        # EC2 API Reference, "DeleteSnapshotReturnCode"
        # (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DeleteSnapshotReturnCode.html):
        # "missing-permissions - The snapshot was not deleted because the role lacks DeleteSnapshot permissions".
        # A denial leaves the snapshot in place and the AMI is still deregistered (DeregisterImage: "the AMI will
        # still be deregistered", https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DeregisterImage.html):
        # `partial`, so the contract does not refuse the call and the emulation answers that return code.
        # Checked for every snapshot of the image, shared ones included (docs silent).
        for snapshot_id in facts.snapshot_ids:
            why = f"DeregisterImage(DeleteAssociatedSnapshots) deletes {snapshot_id} of {image_id} as the caller"
            request = c.request("ec2:DeleteSnapshot", *_snapshot(c, snapshot_id), why)
            out.append(dataclasses.replace(request, partial=True))
    return out


def _create_tags(c: _Call) -> list[AuthorizationRequest]:
    # Called on its own, CreateTags carries no ec2:CreateAction (that key names the create-with-tags action).
    tags = _request_tags(_tag_list(c.params.get("Tags", [])))
    keys = TAGS_IN_REQUEST | EC2_TAG_KEYS | {"ec2:CreateAction"}
    out = []
    for resource_id in c.params.get("Resources", []):
        if resource_id.startswith("ami-"):
            arn, ctx, extra = _image(c, resource_id)
        elif resource_id.startswith("snap-"):
            arn, ctx, extra = _snapshot(c, resource_id)
        elif resource_id.startswith("lt-"):
            template = c.lookup.launch_template(resource_id)
            arn, extra = c.arn("ec2", f"launch-template/{resource_id}"), EC2_TAG_KEYS
            ctx = _resource_tags(template.tags, "aws", "ec2") if template else {}
        else:
            raise UnmappedCallError(
                f"ec2.CreateTags on {resource_id!r}: only images, snapshots and templates are mapped"
            )
        out.append(c.request("ec2:CreateTags", arn, ctx | tags, keys | extra))
    return out


# --- Launching from a launch template, on behalf of Auto Scaling ------------------------------------------
# Amazon EC2 Auto Scaling User Guide, "Control Amazon EC2 launch template usage in Auto Scaling groups"
# (https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-launch-template-permissions.html):
# "ec2:RunInstances are checked when an Auto Scaling group is created or updated using a launch template";
# "users who create or update Auto Scaling groups with a launch template that specifies an instance profile ...
# require the iam:PassRole permission"; ec2:CreateTags on what is launched, as its tagging policy (condition
# ec2:CreateAction = RunInstances) "is needed if there are tags specified in the launch template".
# "Amazon EC2 Auto Scaling API permissions"
# (https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-api-permissions.html) lists the same
# for CreateAutoScalingGroup. The RunInstances resources and keys are the SAR's RunInstances rows (EC2 page).
# IAM SAR, "Actions, resources, and condition keys for AWS Identity and Access Management (IAM)"
# (https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsidentityandaccessmanagementiam.html):
# PassRole on role*, keys iam:PassedToService (modelled) and iam:AssociatedResourceArn (not modelled).


def _template_specs(config: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The LaunchTemplateSpecifications a group configuration names: LaunchTemplate, or a MixedInstancesPolicy's
    template and the templates its overrides name."""
    mixed = (config.get("MixedInstancesPolicy") or {}).get("LaunchTemplate") or {}
    specs = [config.get("LaunchTemplate"), mixed.get("LaunchTemplateSpecification")]
    specs += [o.get("LaunchTemplateSpecification") for o in mixed.get("Overrides", [])]
    return [s for s in specs if s]


def _launch_checks(c: _Call, config: Mapping[str, Any], group: GroupFacts | None) -> list[AuthorizationRequest]:
    out: list[AuthorizationRequest] = []
    for spec in _template_specs(config):
        template_id, template = _template(c, spec)
        if template is None:
            raise UnresolvedCallError(f"{c.operation}: launch template {template_id} is not in the account")
        version = template.version(spec.get("Version"))
        if version is None:
            raise UnresolvedCallError(f"{c.operation}: {template.template_id} has no version {spec.get('Version')!r}")
        # The group's subnets (the request's, else those it has); none: the template's own.
        subnets = _split(config.get("VPCZoneIdentifier")) or (group.subnet_ids if group else ())
        named = f"{template.template_id} version {spec.get('Version') or '$Default'}"
        why = f"{c.operation} names {named}: Auto Scaling checks that the caller may launch from it"
        out += [r for r in _run_instances(c, template, version, subnets, why) if r not in out]
    return out


def run_instances(c: _Call) -> list[AuthorizationRequest]:
    """ec2.RunInstances from a launch template, with the caller's own ImageId, KeyName, SubnetId or
    SecurityGroupIds overriding the template's (no step calls it: it shows what a policy allows a caller)."""
    spec = c.params.get("LaunchTemplate")
    if not spec:
        raise UnmappedCallError("ec2.RunInstances has no IAM mapping without a LaunchTemplate")
    ignored = {"LaunchTemplate", "MinCount", "MaxCount", "ClientToken"}
    if unknown := sorted(set(c.params) - ignored - set(LAUNCH_OVERRIDES)):
        raise UnmappedCallError(f"ec2.RunInstances: parameters {unknown} are not mapped")
    template_id, template = _template(c, spec)
    if template is None:
        raise UnresolvedCallError(f"RunInstances: launch template {template_id} is not in the account")
    version = template.version(spec.get("Version"))
    if version is None:
        raise UnresolvedCallError(f"RunInstances: {template_id} has no version {spec.get('Version')!r}")
    overrides = {k: c.params[k] for k in LAUNCH_OVERRIDES if c.params.get(k)}
    return _run_instances(c, template, version, (), "RunInstances from a launch template", overrides)


# ec2:IsLaunchTemplateResource. EC2 User Guide, "Example policies to control access the Amazon EC2 API", Launch
# templates (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/ExamplePolicies_EC2.html#iam-example-runinstances-launch-templates):
# the key prevents "overriding any pre-existing ARNs in the launch template"; a statement on Resource "*" with it
# = true lets users "launch instances only if they use a launch template", so every resource a launch takes from
# the template carries "true", and the page's NotResource example shows it on the template's subnets. What the
# docs leave open, read the safer way (a policy requiring "true" there is denied):
# - a resource the template does not name carries "false": the subnets Auto Scaling launches into from the
#   group's VPCZoneIdentifier, and the VPC's default security group of a template that names none;
# - on what the launch creates (instance, volumes, network interfaces) and on the template itself, the value is
#   not modelled: a policy conditioning on it there makes the evaluator refuse.
# `overrides` (the caller's own RunInstances parameters) name resources that are not the template's: "false".
LAUNCH_OVERRIDES = ("ImageId", "KeyName", "SubnetId", "SecurityGroupIds")


def _template_resource(from_template: bool) -> Context:
    return {"ec2:IsLaunchTemplateResource": ("true" if from_template else "false",)}


def _run_instances(
    c: _Call,
    template: TemplateFacts,
    version: VersionFacts,
    subnets: tuple[str, ...],
    why: str,
    overrides: Mapping[str, Any] | None = None,
) -> list[AuthorizationRequest]:
    """The RunInstances requests of a launch from `version` of `template`: into `subnets` (the group's), or the
    template's own when empty; `overrides` holds what a direct RunInstances call passes besides the template
    (ImageId, KeyName, SubnetId, SecurityGroupIds)."""
    overrides = overrides or {}
    if unknown := sorted(set(overrides) - set(LAUNCH_OVERRIDES)):
        raise UnmappedCallError(f"{c.operation}: launch overrides {unknown} are not mapped")
    lt_arn = c.arn("ec2", f"launch-template/{template.template_id}")
    via: Context = {"ec2:LaunchTemplate": (lt_arn,)}
    image_id = str(overrides.get("ImageId") or version.image_id or "")
    if not image_id or image_id.startswith("resolve:ssm:"):
        raise UnresolvedCallError(f"{c.operation}: {template.template_id} names no AMI id ({version.image_id!r})")
    image_arn, image_ctx, image_keys = _image(c, image_id)
    image_ctx = image_ctx | _template_resource(image_id == version.image_id and "ImageId" not in overrides)
    profile = c.lookup.instance_profile(version.instance_profile) if version.instance_profile else None
    if version.instance_profile and profile is None:
        raise UnresolvedCallError(f"{c.operation}: instance profile {version.instance_profile!r} is not in the account")
    own_subnets = not subnets and not overrides.get("SubnetId")
    subnets = (str(overrides["SubnetId"]),) if overrides.get("SubnetId") else subnets or version.subnet_ids
    if not subnets:
        raise UnresolvedCallError(f"{c.operation}: no subnet is known for launches from {template.template_id}")
    sg_override = tuple(overrides.get("SecurityGroupIds") or ())
    named_groups = sg_override or version.security_group_ids
    default_group = None if named_groups else c.lookup.default_security_group(subnets[0])
    groups = named_groups or ((default_group,) if default_group else ())  # else the VPC's default
    if not groups:
        raise UnresolvedCallError(f"{c.operation}: no security group is known for launches from {template.template_id}")
    key_name = str(overrides.get("KeyName") or version.key_name or "") or None
    out: list[AuthorizationRequest] = []
    lt_key = "ec2:IsLaunchTemplateResource"

    def run(arn: str, ctx: Context | None = None, *keys: str) -> None:
        out.append(c.request("ec2:RunInstances", arn, via | (ctx or {}), {"ec2:LaunchTemplate", *keys}, why))

    run(lt_arn, _resource_tags(template.tags, "aws", "ec2"), *EC2_TAG_KEYS)
    run(image_arn, image_ctx, *image_keys, lt_key)
    run(c.arn("ec2", "instance/*"), {"ec2:InstanceProfile": (profile.arn,)} if profile else {}, "ec2:InstanceProfile")
    run(c.arn("ec2", "volume/*"))
    run(c.arn("ec2", "network-interface/*"))
    for subnet in subnets:
        ctx = {"ec2:SubnetID": (subnet,)} | _template_resource(own_subnets)
        run(c.arn("ec2", f"subnet/{subnet}"), ctx, "ec2:SubnetID", lt_key)
    for group in groups:
        own = not sg_override and group in version.security_group_ids
        ctx = {"ec2:SecurityGroupID": (group,)} | _template_resource(own)
        run(c.arn("ec2", f"security-group/{group}"), ctx, "ec2:SecurityGroupID", lt_key)
    if key_name:
        own = key_name == version.key_name and "KeyName" not in overrides
        ctx = {"ec2:KeyPairName": (key_name,)} | _template_resource(own)
        run(c.arn("ec2", f"key-pair/{key_name}"), ctx, "ec2:KeyPairName", lt_key)
    for resource_type, tags in version.tag_specifications.items():
        if resource_type in LAUNCHED_TYPES:
            out.append(
                c.request(
                    "ec2:CreateTags",
                    c.arn("ec2", f"{resource_type}/*"),
                    {"ec2:CreateAction": ("RunInstances",), **_request_tags(tags)},
                    TAGS_IN_REQUEST | {"ec2:CreateAction"},
                    why + f" (the template tags each {resource_type} it launches)",
                )
            )
    for role in profile.role_arns if profile else ():
        passed: Context = {"iam:PassedToService": ("ec2.amazonaws.com",)}
        out.append(c.request("iam:PassRole", role, passed, {"iam:PassedToService"}, why + " (its instance profile)"))
    return out
