"""The IAM authorization requests AWS makes for one API call, from the Service Authorization Reference (SAR).

`requests_for(service, operation, params, where, lookup)` maps one call, as the caller passed it to botocore,
to the requests IAM evaluates for it: the call's own action (one request per resource it names) and the
dependent checks a service documents (Auto Scaling's "may the caller launch from this template", EC2 deleting
an AMI's snapshots, SNS using the topic's KMS key). A call without a mapping raises `UnmappedCallError`.

What a request says about condition keys:
- `context` carries the global keys `aws:RequestedRegion` and `aws:PrincipalAccount` (the rehearsal's roles
  live in `where.account`), `ec2:Region` on EC2 actions, and every modelled key AWS would send.
- `condition_keys` lists the SAR keys this module models for that action and resource type. A modelled key is
  in `context` whenever AWS would send it, so a listed key missing from `context` is absent in AWS too.
  SAR keys this module does not model (named in each block as "not modelled") are left out on purpose: a
  policy that conditions on one makes the evaluator refuse instead of deciding on a guess.

Resource ARNs follow the "Resource types" table of each SAR page; the facts they need (tags, snapshots, the
launch template a group uses...) come from a `Lookup` of the emulated account. `MotoLookup` reads moto's
in-memory backends directly: a boto3 call from here would go through the rehearsal's hook again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from rehearsal.iam import AuthorizationRequest

Context = dict[str, tuple[str, ...]]
NEW_GROUP_ID = "00000000-0000-0000-0000-000000000000"  # stands for the id of a group CreateAutoScalingGroup makes
LAUNCHED_TYPES = ("instance", "volume", "network-interface", "spot-instances-request", "elastic-gpu")


class UnmappedCallError(Exception):
    """A call this module has no mapping for: the rehearsal must fail loudly, not authorize it unchecked."""


class UnresolvedCallError(UnmappedCallError):
    """A mapped call whose resources cannot be named from the emulated account (unknown template, profile...)."""


@dataclass(frozen=True)
class Where:
    partition: str  # "aws"
    region: str  # "eu-west-1"
    account: str  # "123456789012"


@dataclass(frozen=True)
class ImageFacts:
    tags: Mapping[str, str]
    snapshot_ids: tuple[str, ...]
    owner: str  # an account id, or "amazon" / "aws-marketplace" (SAR, ec2:Owner)
    public: bool = False
    image_type: str = "machine"
    root_device_type: str = "ebs"


@dataclass(frozen=True)
class SnapshotFacts:
    tags: Mapping[str, str]
    owner: str


@dataclass(frozen=True)
class GroupFacts:
    group_id: str  # the uuid in the group's ARN
    tags: Mapping[str, str]
    launch_template_id: str | None
    launch_template_version: str | None
    subnet_ids: tuple[str, ...]  # VPCZoneIdentifier


@dataclass(frozen=True)
class VersionFacts:
    image_id: str | None
    subnet_ids: tuple[str, ...] = ()  # NetworkInterfaces[].SubnetId
    security_group_ids: tuple[str, ...] = ()  # SecurityGroupIds and NetworkInterfaces[].Groups
    instance_profile: str | None = None  # IamInstanceProfile Arn (or Name) as the template has it
    key_name: str | None = None
    tag_specifications: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # resource type -> tags


@dataclass(frozen=True)
class TemplateFacts:
    template_id: str
    tags: Mapping[str, str]
    default_version: int
    versions: Mapping[int, VersionFacts]

    def version(self, spec: str | None) -> VersionFacts | None:
        """The version a LaunchTemplateSpecification names ("$Default" when it names none)."""
        spec = (spec or "$Default").lower()
        number = {"$default": self.default_version, "$latest": max(self.versions, default=0)}.get(spec)
        return self.versions.get(number if number is not None else int(spec) if spec.isdigit() else -1)


@dataclass(frozen=True)
class ProfileFacts:
    arn: str
    role_arns: tuple[str, ...]


@dataclass(frozen=True)
class SecretFacts:
    arn: str
    tags: Mapping[str, str]


class Lookup(Protocol):
    """What the mapper must read from the emulated account to build resource ARNs and condition context."""

    def image(self, image_id: str) -> ImageFacts | None: ...
    def snapshot(self, snapshot_id: str) -> SnapshotFacts | None: ...
    def group(self, name: str) -> GroupFacts | None: ...
    def launch_template(self, template_id: str) -> TemplateFacts | None: ...
    def launch_template_named(self, name: str) -> TemplateFacts | None: ...
    def default_security_group(self, subnet_id: str) -> str | None: ...  # of the subnet's VPC
    def instance_profile(self, name_or_arn: str) -> ProfileFacts | None: ...
    def topic_kms_key(self, topic_arn: str) -> str | None: ...  # key ARN of an SSE-encrypted topic
    def secret(self, secret_id: str) -> SecretFacts | None: ...


@dataclass(frozen=True)
class _Call:
    operation: str
    params: Mapping[str, Any]
    where: Where
    lookup: Lookup

    def arn(self, service: str, resource: str, *, regional: bool = True, owned: bool = True) -> str:
        w = self.where
        return f"arn:{w.partition}:{service}:{w.region if regional else ''}:{w.account if owned else ''}:{resource}"

    def request(
        self, action: str, resource: str = "*", context: Context | None = None, keys: Iterable[str] = (), why: str = ""
    ) -> AuthorizationRequest:
        ctx: Context = {"aws:RequestedRegion": (self.where.region,), "aws:PrincipalAccount": (self.where.account,)}
        condition_keys = set(keys)
        if action.startswith("ec2:"):  # SAR: every EC2 action carries ec2:Region
            ctx["ec2:Region"] = (self.where.region,)
            condition_keys.add("ec2:Region")
        ctx.update(context or {})
        return AuthorizationRequest(action, resource, ctx, frozenset(condition_keys), why)


Mapper = Callable[[_Call], list[AuthorizationRequest]]
TAGS_IN_REQUEST = frozenset({"aws:RequestTag/*", "aws:TagKeys"})


def _resource_tags(tags: Mapping[str, str], *prefixes: str) -> Context:
    return {f"{prefix}:ResourceTag/{key}": (value,) for prefix in prefixes for key, value in tags.items()}


def _request_tags(tags: Mapping[str, str]) -> Context:
    ctx: Context = {f"aws:RequestTag/{key}": (value,) for key, value in tags.items()}
    return {**ctx, "aws:TagKeys": tuple(tags)} if tags else ctx


def _tag_list(tags: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    return {str(t["Key"]): str(t.get("Value", "")) for t in tags}


def _star(action: str) -> Mapper:
    """An action whose SAR row has no resource type: the request is on "*"."""
    return lambda c: [c.request(action)]


def _split(value: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (value or "").split(",") if part.strip())


# --- Amazon EC2 ------------------------------------------------------------------------------------------
# SAR: "Actions, resources, and condition keys for Amazon EC2",
# https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonec2.html
# Describe* rows have no resource type ("*"). Not modelled: ec2:ManagedResourceOperator, ec2:Attribute(/*),
# ec2:IsLaunchTemplateResource, instance keys other than ec2:InstanceProfile (ec2:InstanceType, metadata
# options...), subnet/security-group tags, snapshot keys other than id, owner and tags.
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
        # A denial leaves the snapshot in place (the AMI is still deregistered); the rehearsal treats it as a
        # failure all the same. Checked for every snapshot of the image, shared ones included (docs silent).
        for snapshot_id in facts.snapshot_ids:
            why = f"DeregisterImage(DeleteAssociatedSnapshots) deletes {snapshot_id} of {image_id} as the caller"
            out.append(c.request("ec2:DeleteSnapshot", *_snapshot(c, snapshot_id), why))
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
        subnets = _split(config.get("VPCZoneIdentifier")) or (group.subnet_ids if group else ()) or version.subnet_ids
        named = f"{template.template_id} version {spec.get('Version') or '$Default'}"
        why = f"{c.operation} names {named}: Auto Scaling checks that the caller may launch from it"
        out += [r for r in _run_instances(c, template, version, subnets, why) if r not in out]
    return out


def _run_instances(
    c: _Call, template: TemplateFacts, version: VersionFacts, subnets: tuple[str, ...], why: str
) -> list[AuthorizationRequest]:
    lt_arn = c.arn("ec2", f"launch-template/{template.template_id}")
    via: Context = {"ec2:LaunchTemplate": (lt_arn,)}
    if not version.image_id or version.image_id.startswith("resolve:ssm:"):
        raise UnresolvedCallError(f"{c.operation}: {template.template_id} names no AMI id ({version.image_id!r})")
    image_arn, image_ctx, image_keys = _image(c, version.image_id)
    profile = c.lookup.instance_profile(version.instance_profile) if version.instance_profile else None
    if version.instance_profile and profile is None:
        raise UnresolvedCallError(f"{c.operation}: instance profile {version.instance_profile!r} is not in the account")
    if not subnets:
        raise UnresolvedCallError(f"{c.operation}: no subnet is known for launches from {template.template_id}")
    default_group = None if version.security_group_ids else c.lookup.default_security_group(subnets[0])
    groups = version.security_group_ids or ((default_group,) if default_group else ())  # else the VPC's default
    if not groups:
        raise UnresolvedCallError(f"{c.operation}: no security group is known for launches from {template.template_id}")
    out: list[AuthorizationRequest] = []

    def run(arn: str, ctx: Context | None = None, *keys: str) -> None:
        out.append(c.request("ec2:RunInstances", arn, via | (ctx or {}), {"ec2:LaunchTemplate", *keys}, why))

    run(lt_arn, _resource_tags(template.tags, "aws", "ec2"), *EC2_TAG_KEYS)
    run(image_arn, image_ctx, *image_keys)
    run(c.arn("ec2", "instance/*"), {"ec2:InstanceProfile": (profile.arn,)} if profile else {}, "ec2:InstanceProfile")
    run(c.arn("ec2", "volume/*"))
    run(c.arn("ec2", "network-interface/*"))
    for subnet in subnets:
        run(c.arn("ec2", f"subnet/{subnet}"), {"ec2:SubnetID": (subnet,)}, "ec2:SubnetID")
    for group in groups:
        run(c.arn("ec2", f"security-group/{group}"), {"ec2:SecurityGroupID": (group,)}, "ec2:SecurityGroupID")
    if version.key_name:
        run(c.arn("ec2", f"key-pair/{version.key_name}"), {"ec2:KeyPairName": (version.key_name,)}, "ec2:KeyPairName")
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


# --- Amazon EC2 Auto Scaling -----------------------------------------------------------------------------
# SAR: "Actions, resources, and condition keys for Amazon EC2 Auto Scaling",
# https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonec2autoscaling.html
# Describe* rows have no resource type. Group ARN: autoScalingGroup:${GroupId}:autoScalingGroupName/${Name}.
# Not modelled: autoscaling:ImageId (described for launch configurations), CapacityReservation*,
# TrafficSourceIdentifiers, Metadata*, SpotPrice. Tags for security
# (https://docs.aws.amazon.com/autoscaling/ec2/userguide/tag-security.html) names ResourceTag, RequestTag, TagKeys.
GROUP_KEYS = frozenset({"aws:ResourceTag/*", "autoscaling:ResourceTag/*"})


def _group_request(
    c: _Call, action: str, name: str, context: Context | None = None, keys: Iterable[str] = (), *, new: bool = False
) -> AuthorizationRequest:
    facts = None if new else c.lookup.group(name)  # a group CreateAutoScalingGroup makes has no tags yet
    arn = c.arn(
        "autoscaling", f"autoScalingGroup:{facts.group_id if facts else NEW_GROUP_ID}:autoScalingGroupName/{name}"
    )
    tags = _resource_tags(facts.tags, "aws", "autoscaling") if facts else {}
    return c.request(action, arn, tags | (context or {}), GROUP_KEYS | set(keys))


def _on_group(action: str) -> Mapper:
    def mapper(c: _Call) -> list[AuthorizationRequest]:
        ctx: Context = {}
        if "TargetGroupARNs" in c.params:  # Attach/DetachLoadBalancerTargetGroups
            ctx["autoscaling:TargetGroupARNs"] = tuple(c.params["TargetGroupARNs"])
        if "ForceDelete" in c.params:  # DeleteAutoScalingGroup; absent when the caller does not pass it
            ctx["autoscaling:ForceDelete"] = ("true" if c.params["ForceDelete"] else "false",)
        keys = {"autoscaling:TargetGroupARNs"} if "TargetGroupARNs" in c.params else set()
        keys |= {"autoscaling:ForceDelete"} if action == "autoscaling:DeleteAutoScalingGroup" else set()
        return [_group_request(c, action, str(c.params["AutoScalingGroupName"]), ctx, keys)]

    return mapper


def _group_settings(params: Mapping[str, Any]) -> tuple[Context, set[str]]:
    """The request keys of CreateAutoScalingGroup / UpdateAutoScalingGroup, each present iff the request sets it.
    LaunchTemplateVersionSpecified is "true" when every template named has a version number (not $Latest,
    $Default or none), and is left unmodelled when the request names no template (docs silent)."""
    ctx: Context = {
        f"autoscaling:{p}": (str(params[p]),) for p in ("MinSize", "MaxSize", "LaunchConfigurationName") if p in params
    }
    if params.get("VPCZoneIdentifier"):
        ctx["autoscaling:VPCZoneIdentifiers"] = _split(params["VPCZoneIdentifier"])
    overrides = ((params.get("MixedInstancesPolicy") or {}).get("LaunchTemplate") or {}).get("Overrides", [])
    if types := tuple(o["InstanceType"] for o in overrides if o.get("InstanceType")):
        ctx["autoscaling:InstanceTypes"] = types
    keys = {f"autoscaling:{k}" for k in ("MinSize", "MaxSize", "LaunchConfigurationName", "InstanceTypes")}
    keys.add("autoscaling:VPCZoneIdentifiers")
    if specs := _template_specs(params):
        numbered = all(str(s.get("Version") or "").isdigit() for s in specs)
        ctx["autoscaling:LaunchTemplateVersionSpecified"] = ("true" if numbered else "false",)
        keys.add("autoscaling:LaunchTemplateVersionSpecified")
    return ctx, keys


def _create_group(c: _Call) -> list[AuthorizationRequest]:
    ctx, keys = _group_settings(c.params)
    for param in ("TargetGroupARNs", "LoadBalancerNames"):
        if c.params.get(param):
            ctx[f"autoscaling:{param}"] = tuple(c.params[param])
        keys.add(f"autoscaling:{param}")
    ctx |= _request_tags(_tag_list(c.params.get("Tags", [])))
    name = str(c.params["AutoScalingGroupName"])
    action = _group_request(c, "autoscaling:CreateAutoScalingGroup", name, ctx, keys | TAGS_IN_REQUEST, new=True)
    # Not emitted: iam:CreateServiceLinkedRole (only when AWSServiceRoleForAutoScaling does not exist yet).
    return [action, *_launch_checks(c, c.params, None)]


def _update_group(c: _Call) -> list[AuthorizationRequest]:
    ctx, keys = _group_settings(c.params)
    name = str(c.params["AutoScalingGroupName"])
    return [
        _group_request(c, "autoscaling:UpdateAutoScalingGroup", name, ctx, keys),
        *_launch_checks(c, c.params, c.lookup.group(name)),
    ]


def _start_refresh(c: _Call) -> list[AuthorizationRequest]:
    # The launch template pages speak of creating and updating groups only. A refresh with a DesiredConfiguration
    # moves the group to that template, and StartInstanceRefresh is publicly reported to fail with "You are not
    # authorized to use launch template": the same checks are applied (docs silent; the safer reading).
    name = str(c.params["AutoScalingGroupName"])
    desired = c.params.get("DesiredConfiguration") or {}
    return [
        _group_request(c, "autoscaling:StartInstanceRefresh", name),
        *_launch_checks(c, desired, c.lookup.group(name)),
    ]


def _tag_groups(c: _Call) -> list[AuthorizationRequest]:
    by_group: dict[str, dict[str, str]] = {}
    for tag in c.params.get("Tags", []):
        by_group.setdefault(str(tag["ResourceId"]), {})[str(tag["Key"])] = str(tag.get("Value", ""))
    return [
        _group_request(c, "autoscaling:CreateOrUpdateTags", group, _request_tags(tags), TAGS_IN_REQUEST)
        for group, tags in by_group.items()
    ]


# --- Elastic Load Balancing V2, CloudWatch ------------------------------------------------------------------
# SAR: "Actions, resources, and condition keys for AWS Elastic Load Balancing V2",
# https://docs.aws.amazon.com/service-authorization/latest/reference/list_awselasticloadbalancingv2.html
# (DescribeTargetHealth: no resource type). SAR: "Actions, resources, and condition keys for Amazon CloudWatch",
# https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazoncloudwatch.html
# (DescribeAlarms: alarm*, arn:${Partition}:cloudwatch:${Region}:${Account}:alarm:${AlarmName}; alarm tags not
# modelled). Without AlarmNames the call lists every alarm: the request is on "*" (docs silent).
def _describe_alarms(c: _Call) -> list[AuthorizationRequest]:
    names = c.params.get("AlarmNames") or []
    return [c.request("cloudwatch:DescribeAlarms", c.arn("cloudwatch", f"alarm:{n}")) for n in names] or [
        c.request("cloudwatch:DescribeAlarms")
    ]


# --- Amazon DynamoDB ---------------------------------------------------------------------------------------
# SAR: "Actions, resources, and condition keys for Amazon DynamoDB",
# https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazondynamodb.html
# table* (arn:${Partition}:dynamodb:${Region}:${Account}:table/${TableName}); Query/Scan with IndexName are on
# the index (table/${TableName}/index/${IndexName}). Not modelled: dynamodb:Attributes, LeadingKeys, Select,
# ReturnValues, ReturnConsumedCapacity, EnclosingOperation, table tags.
def _table_arn(c: _Call, name: str, index: str | None = None) -> str:
    arn = name if name.startswith("arn:") else c.arn("dynamodb", f"table/{name}")
    return f"{arn}/index/{index}" if index else arn


def _on_table(action: str) -> Mapper:
    return lambda c: [c.request(action, _table_arn(c, str(c.params["TableName"]), c.params.get("IndexName")))]


def _batch_write(c: _Call) -> list[AuthorizationRequest]:
    return [c.request("dynamodb:BatchWriteItem", _table_arn(c, table)) for table in c.params.get("RequestItems", {})]


# --- AWS Systems Manager -----------------------------------------------------------------------------------
# SAR: "Actions, resources, and condition keys for AWS Systems Manager",
# https://docs.aws.amazon.com/service-authorization/latest/reference/list_awssystemsmanager.html
# parameter* = arn:${Partition}:ssm:${Region}:${Account}:parameter/${ParameterNameWithoutLeadingSlash};
# DescribeParameters has no resource type. Not modelled: parameter tags (aws:ResourceTag on GetParameter(s)).
def _parameter_arn(c: _Call, name: str) -> str:
    return name if name.startswith("arn:") else c.arn("ssm", "parameter/" + name.removeprefix("/"))


def _put_parameter(c: _Call) -> list[AuthorizationRequest]:
    ctx = _request_tags(_tag_list(c.params.get("Tags", [])))
    if "Overwrite" in c.params:
        ctx["ssm:Overwrite"] = ("true" if c.params["Overwrite"] else "false",)
    if c.params.get("Policies"):
        ctx["ssm:Policies"] = (str(c.params["Policies"]),)
    keys = TAGS_IN_REQUEST | {"ssm:Overwrite", "ssm:Policies"}
    return [c.request("ssm:PutParameter", _parameter_arn(c, str(c.params["Name"])), ctx, keys)]


def _on_parameters(action: str) -> Mapper:  # GetParameter (Name) and GetParameters (Names): one per parameter
    return lambda c: [c.request(action, _parameter_arn(c, str(n))) for n in c.params.get("Names") or [c.params["Name"]]]


# --- EC2 Image Builder -------------------------------------------------------------------------------------
# SAR: "Actions, resources, and condition keys for Amazon EC2 Image Builder",
# https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonec2imagebuilder.html
# StartImagePipelineExecution: imagePipeline*, aws:RequestTag/aws:TagKeys, dependent actions
# iam:CreateServiceLinkedRole, imagebuilder:GetImagePipeline, imagebuilder:TagResource. GetImage and
# ListImagePackages: image* (the build version ARN). Image pipeline and image tags are not modelled.
def _start_pipeline(c: _Call) -> list[AuthorizationRequest]:
    arn, tags = str(c.params["imagePipelineArn"]), dict(c.params.get("tags") or {})
    if tags:  # TagResource would be on the image the execution creates, whose ARN is not known beforehand
        raise UnresolvedCallError("imagebuilder.StartImagePipelineExecution with tags: the tagged image is unknown")
    # The SAR lists GetImagePipeline as a dependent action and the docs do not say when it is checked: always
    # (the safer reading). CreateServiceLinkedRole only applies while the service-linked role is missing.
    why = "SAR lists imagebuilder:GetImagePipeline as a dependent action of StartImagePipelineExecution"
    return [
        c.request("imagebuilder:StartImagePipelineExecution", arn, {}, TAGS_IN_REQUEST),
        c.request("imagebuilder:GetImagePipeline", arn, why=why),
    ]


def _on_build(action: str) -> Mapper:
    return lambda c: [c.request(action, str(c.params["imageBuildVersionArn"]))]


# --- AWS Step Functions ------------------------------------------------------------------------------------
# SAR: "Actions, resources, and condition keys for AWS Step Functions",
# https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsstepfunctions.html
# SendTaskSuccess/SendTaskFailure/SendTaskHeartbeat: no resource type ("*"). StartExecution: statemachine*,
# states:StateMachineQualifier (the version or alias a qualified ARN names). DescribeExecution: execution* or
# express*, the ARN as called. State machine and execution tags are not modelled. (Public reports show AWS naming
# the state machine in SendTaskFailure denials; the request carries only an opaque token, and "*" is what the
# SAR says: a policy scoped to the state machine ARN is denied here, one on "*" passes either way.)
def _start_execution(c: _Call) -> list[AuthorizationRequest]:
    arn = str(c.params["stateMachineArn"])
    parts = arn.split(":")  # arn:aws:states:region:account:stateMachine:name[:qualifier]
    ctx: Context = {"states:StateMachineQualifier": (parts[7],)} if len(parts) > 7 else {}
    return [c.request("states:StartExecution", arn, ctx, {"states:StateMachineQualifier"})]


# --- AWS Secrets Manager -----------------------------------------------------------------------------------
# SAR: "Actions, resources, and condition keys for AWS Secrets Manager",
# https://docs.aws.amazon.com/service-authorization/latest/reference/list_awssecretsmanager.html
# Secret* = arn:${Partition}:secretsmanager:${Region}:${Account}:secret:${SecretId}, where the ARN "includes the
# name of the secret followed by six random characters" (CreateSecret, ARN). A SecretId naming a secret of the
# account is authorized on that secret's ARN; an unknown name on "secret:NAME-??????" (the suffix unknown).
# Not modelled: secretsmanager:SecretId, SecretPrimaryRegion, resource/AllowRotationLambdaArn, resource/Type.
def _get_secret(c: _Call) -> list[AuthorizationRequest]:
    secret_id = str(c.params["SecretId"])
    facts = c.lookup.secret(secret_id)
    fallback = secret_id if secret_id.startswith("arn:") else c.arn("secretsmanager", f"secret:{secret_id}-??????")
    ctx = _resource_tags(facts.tags, "aws", "secretsmanager") if facts else {}
    for param in ("VersionId", "VersionStage"):
        if c.params.get(param):
            ctx[f"secretsmanager:{param}"] = (str(c.params[param]),)
    keys = {
        "secretsmanager:VersionId",
        "secretsmanager:VersionStage",
        "aws:ResourceTag/*",
        "secretsmanager:ResourceTag/*",
    }
    return [c.request("secretsmanager:GetSecretValue", facts.arn if facts else fallback, ctx, keys)]


# --- Amazon SNS, AWS KMS -----------------------------------------------------------------------------------
# SAR: "Actions, resources, and condition keys for Amazon SNS",
# https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonsns.html (Publish: topic*).
# SNS Developer Guide, "Managing Amazon SNS encryption keys and costs", "Allow a user to send messages to a
# topic with SSE" (https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html): "The publisher must have
# the kms:GenerateDataKey and kms:Decrypt permissions" for the key. KMS SAR ("Actions, resources, and condition
# keys for AWS Key Management Service",
# https://docs.aws.amazon.com/service-authorization/latest/reference/list_awskeymanagementservice.html): key*;
# modelled kms:CallerAccount; not modelled kms:ViaService, kms:EncryptionContext*, key properties and tags.
def _publish(c: _Call) -> list[AuthorizationRequest]:
    topic = c.params.get("TopicArn")
    if not topic:
        raise UnmappedCallError(
            "sns.Publish to a TargetArn or PhoneNumber has no IAM mapping in rehearsal/iam/requests.py"
        )
    out = [c.request("sns:Publish", str(topic))]
    if key := c.lookup.topic_kms_key(str(topic)):
        why = f"SNS encrypts the message with the topic's KMS key as the publisher ({topic})"
        caller: Context = {"kms:CallerAccount": (c.where.account,)}
        out += [c.request(a, key, caller, {"kms:CallerAccount"}, why) for a in ("kms:GenerateDataKey", "kms:Decrypt")]
    return out


# --- AWS Lambda ---------------------------------------------------------------------------------------------
# SAR: "Actions, resources, and condition keys for AWS Lambda",
# https://docs.aws.amazon.com/service-authorization/latest/reference/list_awslambda.html: InvokeFunction
# (operation Invoke) on function*; lambda:EventSourceToken and lambda:InvokedViaFunctionUrl are absent for an
# SDK Invoke. Lambda Developer Guide, "Fine-tuning the Resources and Conditions sections of policies"
# (https://docs.aws.amazon.com/lambda/latest/dg/lambda-api-permissions-ref.html) and "Using Lambda aliases in
# event sources and permissions policies" (https://docs.aws.amazon.com/lambda/latest/dg/using-aliases.html):
# permissions apply to the ARN used; an unqualified ARN does not cover a qualified invoke. So the resource is
# the ARN as called: unqualified, or with the version, alias or $LATEST the caller named.
def _function_arn(c: _Call, name: str, qualifier: str | None) -> str:
    if name.startswith("arn:"):
        arn = name
    elif ":function:" in name:  # partial ARN: ACCOUNT:function:NAME[:QUALIFIER]
        arn = f"arn:{c.where.partition}:lambda:{c.where.region}:{name}"
    else:  # NAME[:QUALIFIER]
        arn = c.arn("lambda", f"function:{name}")
    return f"{arn}:{qualifier}" if qualifier and len(arn.split(":")) == 7 else arn


def _invoke(c: _Call) -> list[AuthorizationRequest]:
    arn = _function_arn(c, str(c.params["FunctionName"]), c.params.get("Qualifier"))
    return [c.request("lambda:InvokeFunction", arn, {}, {"lambda:EventSourceToken", "lambda:InvokedViaFunctionUrl"})]


# --- The table: "<IAM service prefix>.<operation>" -> mapper ----------------------------------------------
def _each(prefix: str, factory: Callable[[str], Mapper], operations: str) -> dict[str, Mapper]:
    return {f"{prefix}.{op}": factory(f"{prefix}:{op}") for op in operations.split()}


_MAPPINGS: dict[str, Mapper] = {
    **_each("ec2", _star, "DescribeImages DescribeImageReferences DescribeInstances DescribeLaunchTemplates"),
    **_each("ec2", _star, "DescribeSnapshots DescribeSubnets"),
    "ec2.DescribeLaunchTemplateVersions": _describe_template_versions,
    **_each("ec2", _on_template, "CreateLaunchTemplateVersion ModifyLaunchTemplate DeleteLaunchTemplateVersions"),
    "ec2.DeregisterImage": _deregister_image,
    "ec2.CreateTags": _create_tags,
    **_each("autoscaling", _star, "DescribeAutoScalingGroups DescribeInstanceRefreshes DescribeScalingActivities"),
    **_each("autoscaling", _star, "DescribeLoadBalancerTargetGroups"),
    **_each("autoscaling", _on_group, "RollbackInstanceRefresh CancelInstanceRefresh DeleteAutoScalingGroup"),
    **_each(
        "autoscaling", _on_group, "SetDesiredCapacity AttachLoadBalancerTargetGroups DetachLoadBalancerTargetGroups"
    ),
    "autoscaling.StartInstanceRefresh": _start_refresh,
    "autoscaling.CreateAutoScalingGroup": _create_group,
    "autoscaling.UpdateAutoScalingGroup": _update_group,
    "autoscaling.CreateOrUpdateTags": _tag_groups,
    "elasticloadbalancing.DescribeTargetHealth": _star("elasticloadbalancing:DescribeTargetHealth"),
    "cloudwatch.DescribeAlarms": _describe_alarms,
    **_each("dynamodb", _on_table, "GetItem PutItem DeleteItem UpdateItem Query Scan"),
    "dynamodb.BatchWriteItem": _batch_write,
    "ssm.PutParameter": _put_parameter,
    **_each("ssm", _on_parameters, "GetParameter GetParameters"),
    "ssm.DescribeParameters": _star("ssm:DescribeParameters"),
    "imagebuilder.StartImagePipelineExecution": _start_pipeline,
    **_each("imagebuilder", _on_build, "GetImage ListImagePackages"),
    **_each("states", _star, "SendTaskSuccess SendTaskFailure SendTaskHeartbeat"),
    "states.StartExecution": _start_execution,
    "states.DescribeExecution": lambda c: [c.request("states:DescribeExecution", str(c.params["executionArn"]))],
    "secretsmanager.GetSecretValue": _get_secret,
    "sns.Publish": _publish,
    "lambda.Invoke": _invoke,
}

# botocore service name, endpoint prefix or hyphenated service id -> the SAR's service prefix
_PREFIXES = {
    "elbv2": "elasticloadbalancing", "elastic-load-balancing-v2": "elasticloadbalancing",
    "monitoring": "cloudwatch", "stepfunctions": "states", "sfn": "states",
    "auto-scaling": "autoscaling", "secrets-manager": "secretsmanager",
}  # fmt: skip
_KNOWN = {"ec2", "autoscaling", "dynamodb", "ssm", "sns", "imagebuilder", "elasticloadbalancing", "cloudwatch"}
_KNOWN |= {"states", "lambda", "secretsmanager", "kms"}


def requests_for(
    service: str, operation: str, params: Mapping[str, Any], where: Where, lookup: Lookup
) -> list[AuthorizationRequest]:
    """The authorization requests AWS evaluates for `service.operation(**params)`, the call's own first."""
    prefix = _PREFIXES.get(service.lower(), service.lower())
    mapper = _MAPPINGS.get(f"{prefix}.{operation}") if prefix in _KNOWN else None
    if mapper is None:
        raise UnmappedCallError(f"{service}.{operation} has no IAM mapping in rehearsal/iam/requests.py")
    return mapper(_Call(operation, params, where, lookup))


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
