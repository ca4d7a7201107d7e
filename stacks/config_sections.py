"""The synth-only sections of the configuration (stacks/config.py): the images and their builds, the lock, approvals,
notifications, the webhook, the example fleet and the target environment."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field, ValidationInfo, field_validator

from shared.config import _Model as Model

PROJECT_ROOT = Path(__file__).resolve().parent.parent
_COMPONENT_REF = re.compile(
    r"^(aws:[a-z0-9-]+|arn:aws[a-z-]*:imagebuilder:[a-z0-9-]*:(aws|\d{12}):component/.+|.+\.ya?ml)$"
)
_SEMVER = re.compile(r"^\d+\.\d+\.\d+$")
# Regions outside the commercial partition, by name prefix. Powertools documents the SSM parameters naming its
# layer (stacks/lambda_function.py) for its commercial layers only; for China and GovCloud its docs list bare layer
# ARNs, from other publisher accounts (GovCloud's at an older layer version), and no Region of another partition
# (https://docs.aws.amazon.com/powertools/python/latest/getting-started/install/#using-ssm-parameter-store,
# #aws-china-regions, #aws-govcloud-regions).
_OTHER_PARTITIONS = (
    ("cn-", "aws-cn"),
    ("us-gov-", "aws-us-gov"),
    ("us-isob-", "aws-iso-b"),
    ("us-isof-", "aws-iso-f"),
    ("us-iso-", "aws-iso"),
    ("eu-isoe-", "aws-iso-e"),
)


def _check_components(refs: tuple[str, ...]) -> tuple[str, ...]:
    for ref in refs:
        if not _COMPONENT_REF.fullmatch(ref):
            raise ValueError(
                f"{ref!r} is not a component reference (use aws:<managed-name>, an Image Builder component ARN "
                "or a path to a component YAML file)"
            )
        if ref.endswith((".yml", ".yaml")) and not ref.startswith("arn:") and not (PROJECT_ROOT / ref).is_file():
            raise ValueError(f"component file {ref!r} does not exist (paths are relative to the project root)")
    return refs


def _check_semver(value: str) -> str:
    if not _SEMVER.fullmatch(value):
        raise ValueError(f"must be a semantic version like 1.0.0, got {value!r}")
    return value


# baseImage.ansiblePlaybook: the ansible-playbook component pastes it into its bash (and checks it again with this
# very pattern): a plain s3://<bucket>/<key>.yml, the bucket as S3 names them (3-63 of a-z 0-9 . -, a letter or
# digit at either end, https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html), the key of
# letters, digits and ._/- only: no quote, space, `$`, backtick, `;`, `|` or other shell metacharacter.
PLAYBOOK_URI = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/[A-Za-z0-9._/-]+\.ya?ml$")


class BaseImage(Model):
    parent_image: str = "amazon-linux-2023-x86"
    schedule: str | None = "cron(0 3 * * ? *)"
    components: tuple[str, ...] = ("aws:update-linux", "imagebuilder/components/base-hardening.yml")
    ansible_playbook: str | None = None
    build_instance_types: tuple[str, ...] = Field(default=("m7i.large",), min_length=1)
    version: str = "1.0.0"

    @field_validator("components")
    @classmethod
    def _components(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _check_components(value)

    @field_validator("ansible_playbook")
    @classmethod
    def _ansible_playbook(cls, value: str | None) -> str | None:
        if value is not None and not PLAYBOOK_URI.fullmatch(value):
            raise ValueError(
                "must be s3://<bucket>/<key>.yml (or .yaml) whose key holds only letters, digits and ._/- "
                f"(it reaches a shell command), got {value!r}"
            )
        return value

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(
            r"^(cron\(([^ )]+ ){5}[^ )]+\)|rate\(\d+ (minute|minutes|hour|hours|day|days)\))$", value
        ):
            raise ValueError(f"must be an EventBridge cron(...) (6 fields) or rate(...) expression, got {value!r}")
        return value

    @field_validator("version")
    @classmethod
    def _version(cls, value: str) -> str:
        return _check_semver(value)


class AppImage(Model):
    components: tuple[str, ...] = ("imagebuilder/components/app-install.yml",)
    test_components: tuple[str, ...] = ("imagebuilder/components/app-test.yml",)
    build_instance_types: tuple[str, ...] = Field(default=("m7i.large",), min_length=1)
    install_script: str = Field(default="deploy/install.sh", pattern=r"^[A-Za-z0-9._/-]+$")
    test_script: str = Field(default="deploy/test.sh", pattern=r"^[A-Za-z0-9._/-]+$")
    version: str = "1.0.0"

    @field_validator("components", "test_components")
    @classmethod
    def _components(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _check_components(value)

    @field_validator("version")
    @classmethod
    def _version(cls, value: str) -> str:
        return _check_semver(value)


class Build(Model):
    subnet_id: str | None = Field(default=None, pattern=r"^subnet-[0-9a-f]{8,17}$")
    # validate_default: an omitted list is checked against subnetId too.
    security_group_ids: tuple[str, ...] = Field(default=(), validate_default=True)
    logs_bucket: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    ami_kms_key_id: str | None = None
    extra_regions: tuple[str, ...] = ()
    share_with_accounts: tuple[str, ...] = ()
    fallback_poll_seconds: int = Field(default=600, ge=1, le=3600)
    timeout_minutes: int = Field(default=240, ge=15, le=1440)

    @field_validator("security_group_ids")
    @classmethod
    def _sgs(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        for sg in value:
            if not re.fullmatch(r"^sg-[0-9a-f]{8,17}$", sg):
                raise ValueError(f"{sg!r} is not a security group id (sg-...)")
        subnet = info.data.get("subnet_id")
        # CreateInfrastructureConfiguration: "If you specify subnetId, you must also specify one or more security
        # group IDs in securityGroupIds. Otherwise, the request fails."
        # (https://docs.aws.amazon.com/imagebuilder/latest/APIReference/API_CreateInfrastructureConfiguration.html)
        if subnet and not value:
            raise ValueError(
                f"required with build.subnetId {subnet!r}: Image Builder refuses a subnet without security groups"
            )
        if value and not subnet and "subnet_id" in info.data:
            raise ValueError("needs build.subnetId (Image Builder takes both or neither)")
        return value

    @field_validator("share_with_accounts")
    @classmethod
    def _accounts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for account in value:
            if not re.fullmatch(r"^\d{12}$", account):
                raise ValueError(f"{account!r} is not a 12-digit AWS account id")
        return value


class Lock(Model):
    ttl_minutes: int = Field(default=300, ge=15, le=1440)
    wait_seconds: int = Field(default=600, ge=0, le=3600)
    poll_seconds: int = Field(default=30, ge=1, le=600)
    # How long a queued push may wait for its targets in all (pushes and the schedule queue, manual runs wait
    # waitSeconds); then it fails with DeploymentInProgress. Bounded so its looks fit the execution's history.
    queue_hours: int = Field(default=24, ge=1, le=72)


class Approval(Model):
    # Step Functions ends an unanswered approval at TimeoutSeconds as States.Timeout (the ASL names it
    # ApprovalExpired); a Standard execution may run for a year.
    timeout_hours: int = Field(default=72, ge=1, le=8760)


class Notifications(Model):
    emails: tuple[str, ...] = ()

    @field_validator("emails")
    @classmethod
    def _emails(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for email in value:
            if not re.fullmatch(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", email):
                raise ValueError(f"{email!r} is not an email address")
        return value


class Webhook(Model):
    # Reserved concurrency of the public GitHub webhook function: a flood of requests is throttled there instead
    # of using the account's Lambda concurrency that the deploy steps need (Lambda's Invoke answers a throttle with
    # 429 TooManyRequestsException, https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html; the function
    # URL pages name no status for it). None: no reservation, for an account whose concurrency quota leaves no
    # room (a reservation must leave 100 unreserved,
    # https://docs.aws.amazon.com/lambda/latest/api/API_PutFunctionConcurrency.html).
    reserved_concurrency: int | None = Field(default=2, ge=1, le=100)


class ExampleFleetConfig(Model):
    enabled: bool = False
    instance_type: str = "t3.micro"
    desired_capacity: int = Field(default=2, ge=1, le=10)


class Environment(Model):
    account: str | None = Field(default=None, pattern=r"^\d{12}$")
    region: str | None = Field(default=None, pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")

    @field_validator("region")
    @classmethod
    def _commercial_partition(cls, value: str | None) -> str | None:
        partition = next((p for prefix, p in _OTHER_PARTITIONS if value and value.startswith(prefix)), None)
        if partition:
            raise ValueError(
                f"{value} is in the {partition} partition, where Powertools publishes no SSM parameter naming its "
                "Lambda layer (only the commercial aws partition has them), so the functions would get no layer; "
                "use a Region of the aws partition"
            )
        return value
