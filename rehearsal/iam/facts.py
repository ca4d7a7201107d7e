"""What the IAM request mapping reads from the emulated account (`Lookup`), and the pieces every mapper shares."""

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


def _parameter_arn(c: _Call, name: str) -> str:
    """An SSM parameter's ARN: `parameter/<name without its leading slash>` (SAR, Systems Manager resource types)."""
    return name if name.startswith("arn:") else c.arn("ssm", "parameter/" + name.removeprefix("/"))
