"""`cdk.json` context → one frozen, validated configuration object.

Built once in app.py from the context key `immutableAmi` and passed down to every construct.
A bad value fails `cdk synth` with the key path and the reason, for example::

    retention.keepLaunchTemplateVersions must be >= 2, got 1

PipelineConfig is the DeployConfig the Lambda functions parse at cold start (lambdas/shared/config.py) plus
the synth-only sections: the deploy-time part (application, source, stages, refresh, blueGreen, retention) is
validated by the very same models and rules, so what synth accepts the functions accept too, and a value a
step would refuse fails synth instead of a deployment. No AWS calls happen here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic.alias_generators import to_camel

from shared.config import DeployConfig
from shared.config import _Model as Model
from stacks import bounds

CONTEXT_KEY = "immutableAmi"
PROJECT_ROOT = Path(__file__).resolve().parent.parent

# CloudWatch Logs accepts only these retention periods (days).
LOG_RETENTION_DAYS = (
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)
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
REMOVED_KEYS = {
    "powertoolsLayerVersion": (
        "was removed: the functions get the Powertools layer of the release the tests run (the "
        "aws-lambda-powertools version pinned in requirements-dev.txt), named at deploy time by Powertools' public "
        "SSM parameter for that version; delete the key"
    ),
}


class ConfigError(ValueError):
    """Invalid `cdk.json` configuration; the message names every bad key."""


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


class PipelineConfig(DeployConfig):
    """DeployConfig (application, source, stages, refresh, blueGreen, retention and their rules) + synth-only keys."""

    environment: Environment = Environment()
    base_image: BaseImage = BaseImage()
    app_image: AppImage = AppImage()
    build: Build = Build()
    lock: Lock = Lock()
    approval: Approval = Approval()
    notifications: Notifications = Notifications()
    webhook: Webhook = Webhook()
    example_fleet: ExampleFleetConfig = ExampleFleetConfig()
    log_retention_days: int = 90
    pass_role_arns: tuple[str, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _removed_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            removed = [f"{key} {why}" for key, why in REMOVED_KEYS.items() if key in data]
            if removed:
                raise ValueError("; ".join(removed))
        return data

    @field_validator("log_retention_days")
    @classmethod
    def _retention_days(cls, value: int) -> int:
        if value not in LOG_RETENTION_DAYS:
            raise ValueError(
                f"must be one of CloudWatch's periods {', '.join(map(str, LOG_RETENTION_DAYS))}, got {value}"
            )
        return value

    @field_validator("pass_role_arns")
    @classmethod
    def _roles(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for arn in value:
            if not re.fullmatch(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$", arn) or arn.endswith("*"):
                raise ValueError(f"{arn!r} is not the ARN of one IAM role (no wildcards)")
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> PipelineConfig:
        names = [s.name for s in self.stages]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise ValueError(f"stages[{i}].name {name!r} is used by an earlier stage")
        seen: dict[str, str] = {}
        for stage in self.stages:
            for target in stage.targets:
                if target.auto_scaling_group_name in seen:
                    raise ValueError(
                        f"Auto Scaling group {target.auto_scaling_group_name!r} appears in stages "
                        f"{seen[target.auto_scaling_group_name]!r} and {stage.name!r}"
                    )
                seen[target.auto_scaling_group_name] = stage.name
        for stage in self.stages:
            if stage.strategy != "blue-green":
                continue
            for target in stage.targets:
                # Green groups are named `<group>-<deployment>`: another configured group must not look like one.
                prefix = f"{target.auto_scaling_group_name}-"
                clash = sorted(name for name in seen if name.startswith(prefix))
                if clash:
                    raise ValueError(
                        f"stage {stage.name!r} is blue-green, so {target.auto_scaling_group_name!r} names its new "
                        f"groups {prefix}<deployment>; rename the configured group(s) {', '.join(map(repr, clash))}"
                    )
        bounds.check_history_budget(self)
        bounds.check_lock_outlasts(self)
        bounds.check_environment_size(self)
        return self

    def deploy_config(self) -> DeployConfig:
        """The part the Lambda functions need, as the model they parse."""
        return DeployConfig(
            application=self.application,
            source=self.source,
            stages=self.stages,
            refresh=self.refresh,
            blue_green=self.blue_green,
            retention=self.retention,
        )

    def deploy_config_json(self) -> str:
        return self.deploy_config().model_dump_json(by_alias=True)


def _message(err: Any) -> str:
    path = ""
    for part in err["loc"]:
        # camelCase as the configuration spells it (pydantic names a defaulted field by its Python name)
        key = to_camel(str(part))
        path += f"[{part}]" if isinstance(part, int) else (f".{key}" if path else key)
    ctx = err.get("ctx") or {}
    got = err.get("input")
    kind = err["type"]
    where = path or CONTEXT_KEY
    if kind == "greater_than_equal":
        return f"{where} must be >= {ctx['ge']}, got {got!r}"
    if kind == "less_than_equal":
        return f"{where} must be <= {ctx['le']}, got {got!r}"
    if kind == "string_pattern_mismatch":
        return f"{where} must match {ctx['pattern']}, got {got!r}"
    if kind == "literal_error":
        return f"{where} must be one of {ctx['expected']}, got {got!r}"
    if kind == "missing":
        return f"{where} is required"
    if kind == "extra_forbidden":
        return f"{where} is not a known key (see README, Configuration)"
    if kind == "too_short":
        return f"{where} must have at least {ctx.get('min_length')} item(s), got {len(got) if got is not None else 0}"
    if kind == "value_error":
        return f"{where}: {ctx.get('error', err['msg'])!s}"
    return f"{where}: {err['msg']}, got {got!r}"


def strip_json_comments(text: str) -> str:
    """Remove `// ...` line comments outside strings, so the configuration file can explain itself."""
    out: list[str] = []
    in_string = escaped = False
    i = 0
    while i < len(text):
        char = text[i]
        if in_string:
            out.append(char)
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
            out.append(char)
        elif text.startswith("//", i):
            while i < len(text) and text[i] != "\n":
                i += 1
            continue
        else:
            out.append(char)
        i += 1
    return "".join(out)


def _read_context(context: Any) -> Any:
    """The context value is the configuration object itself, or the path of a .json/.jsonc file holding it."""
    if not isinstance(context, str):
        return context
    text = context
    if context.endswith((".json", ".jsonc")):
        path = PROJECT_ROOT / context
        if not path.is_file():
            raise ConfigError(f"{CONTEXT_KEY}: configuration file {context!r} does not exist")
        text = path.read_text(encoding="utf-8")
    try:
        return json.loads(strip_json_comments(text))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{CONTEXT_KEY}: not valid JSON ({exc})") from exc


def load_config(context: Any) -> PipelineConfig:
    """Validate the `immutableAmi` context value: an object, a JSON string (`-c`), or a .json/.jsonc file path."""
    if context is None:
        raise ConfigError(f"cdk.json has no context key {CONTEXT_KEY!r}: see README, Configuration")
    context = _read_context(context)
    try:
        return PipelineConfig.model_validate(context)
    except ValidationError as exc:
        lines = [_message(err) for err in exc.errors(include_url=False)]
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines)) from None
