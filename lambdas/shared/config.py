"""The deploy configuration as the Lambda functions see it.

The CDK app validates `cdk.json` (stacks/config.py) and hands the deploy-relevant part to every
function as the JSON environment variable DEPLOY_CONFIG. It is parsed once, at cold start, by
`load_deploy_config()`; logic receives the parsed object and never reads the environment.
tests/infra pins that what the stack writes parses with this model.

Every rule a step applies to the configuration lives here, on these models, so the same code refuses a
bad value at `cdk synth` (stacks/config.py's PipelineConfig is a DeployConfig) and at a function's cold
start, each message naming the key path. tests/infra/test_synth_rejects.py lists the rules and fails when
a step raises a configuration error this module does not know.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Mapping
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

ENV_VAR = "DEPLOY_CONFIG"

# AlarmSpecification.Alarms: "You can specify up to 10 alarms", each name 1 to 255 characters
# (https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_AlarmSpecification.html). DescribeAlarms
# takes names of the same length (https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_DescribeAlarms.html).
MAX_REFRESH_ALARMS = 10
AlarmName = Annotated[str, StringConstraints(min_length=1, max_length=255)]
# Auto Scaling group names are 1 to 255 characters
# (https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_CreateAutoScalingGroup.html). A blue-green stage
# names its green groups `<configured name>-<suffix>` (shared.blue_green.green_group_name, which refuses a name
# that leaves no room): the configured name needs room for the hyphen and at least one character.
MAX_GROUP_NAME = 255
MAX_BLUE_GREEN_GROUP_NAME = MAX_GROUP_NAME - 2
_GITHUB_REPOSITORY = re.compile(r"^[\w.-]+/[\w.-]+$")
# A secret's ARN: arn:<partition>:secretsmanager:<region>:<account>:secret:<name>-<6 random characters>
# (https://docs.aws.amazon.com/secretsmanager/latest/userguide/reference_iam-permissions.html for the resource
# type; https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_CreateSecret.html: names use ASCII
# letters, digits and /_+=.@-, and "Secrets Manager automatically adds a hyphen and six random characters after
# the secret name at the end of the ARN"). The complete ARN is required: the build role is granted exactly it.
_SECRET_ARN = re.compile(
    r"^arn:aws[a-z-]*:secretsmanager:[a-z]{2}(-[a-z]+)+-\d:\d{12}:secret:[A-Za-z0-9/_+=.@-]+-[A-Za-z0-9]{6}$"
)


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, extra="forbid")


class Target(_Model):
    auto_scaling_group_name: str = Field(min_length=1, max_length=MAX_GROUP_NAME)
    launch_template_id: str = Field(pattern=r"^lt-[0-9a-f]{8,17}$")


Strategy = Literal["rolling", "blue-green"]


class Stage(_Model):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")
    targets: tuple[Target, ...] = Field(min_length=1)
    approval: bool = False
    # rolling: an instance refresh replaces the group's instances in place.
    # blue-green: a new (green) group from the new version joins the target groups; the old (blue) one is retired.
    strategy: Strategy = "rolling"
    # Targets are rolled out in waves of this many groups at once; the stage stops at the first failed wave.
    wave_size: int = Field(default=1, ge=1, le=40)


class RefreshPreferences(_Model):
    min_healthy_percentage: int = Field(default=90, ge=0, le=100)
    max_healthy_percentage: int = Field(default=100, ge=100, le=200)
    instance_warmup_seconds: int = Field(default=300, ge=0)
    checkpoint_percentages: tuple[int, ...] = ()
    checkpoint_delay_seconds: int = Field(default=3600, ge=0, le=172800)
    alarms: tuple[AlarmName, ...] = ()
    skip_matching: bool = True
    bake_time_seconds: int = Field(default=0, ge=0, le=172800)
    auto_rollback: bool = True
    scale_in_protected_instances: Literal["Refresh", "Ignore", "Wait"] = "Ignore"
    standby_instances: Literal["Terminate", "Ignore", "Wait"] = "Ignore"
    timeout_minutes: int = Field(default=60, ge=5, le=1440)
    # Health is confirmed by polling this often once the refresh itself has finished (target groups).
    poll_interval_seconds: int = Field(default=30, ge=0, le=3600)
    # The wait for a refresh is resumed by its completion event; without one it polls this often.
    fallback_poll_seconds: int = Field(default=300, ge=1, le=3600)


class BlueGreen(_Model):
    """How a blue-green stage brings up, watches and retires groups (stacks/config.py documents each key)."""

    # Every green instance must be InService and healthy in every target group within this time.
    health_timeout_minutes: int = Field(default=30, ge=5, le=1440)
    # Once green is healthy: keep watching it (health and `alarms`) this long before detaching blue; 0 = at once.
    soak_seconds: int = Field(default=0, ge=0, le=86400)
    alarms: tuple[AlarmName, ...] = ()
    # The old group after the shift: scaled to zero (no cost; a rollback waits for new instances) or kept
    # running outside the target groups (a rollback takes seconds).
    old_group: Literal["scale-to-zero", "keep-running"] = "scale-to-zero"
    # Green is given up once this many of its launches have failed (bad AMI, capacity, quota).
    max_failed_launches: int = Field(default=3, ge=1, le=50)


class Retention(_Model):
    keep_images: int = Field(default=5, ge=1)
    keep_launch_template_versions: int = Field(default=5, ge=2)
    # blue-green: old groups kept (besides the live one) per target for a fast rollback; older ones are deleted.
    keep_groups: int = Field(default=2, ge=0, le=20)
    # A pruned AMI and its snapshots stay restorable this many days in the Recycle Bin (stacks/recycle_bin.py);
    # 0 = no Recycle Bin rule. A rule's retention period is 1 to 365 days
    # (https://docs.aws.amazon.com/recyclebin/latest/APIReference/API_RetentionPeriod.html).
    recycle_bin_days: int = Field(default=7, ge=0, le=365)


class Source(_Model):
    type: Literal["codecommit", "github"]
    repository: str = Field(min_length=1)
    branch: str = Field(min_length=1)
    # GitHub only: the Secrets Manager secret holding a read-only token for a private repository; the build
    # instance reads it at build time (README "Private GitHub repositories").
    token_secret_arn: str | None = None

    @field_validator("repository")
    @classmethod
    def _github_owner_and_name(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("type") == "github" and not _GITHUB_REPOSITORY.fullmatch(value):
            raise ValueError(f"must be owner/name for GitHub, got {value!r}")
        return value

    @field_validator("token_secret_arn")
    @classmethod
    def _token_secret(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return value
        if info.data.get("type") == "codecommit":
            raise ValueError(
                "only for GitHub: a CodeCommit repository is cloned with the build role's codecommit:GitPull, "
                "no token needed; remove the key"
            )
        if not _SECRET_ARN.fullmatch(value):
            raise ValueError(
                "must be the complete ARN of a Secrets Manager secret, "
                f"arn:<partition>:secretsmanager:<region>:<account>:secret:<name>-<6 characters>, got {value!r}"
            )
        return value


def refresh_problems(refresh: RefreshPreferences) -> list[str]:
    """What StartInstanceRefresh would refuse in these preferences, or what would stop it short, each naming its key.

    Auto Scaling's rules (https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_RefreshPreferences.html):
    CheckpointPercentages are "in ascending order. Each number must be unique. To replace all instances in the Auto
    Scaling group, the last number in the array must be 100"; MaxHealthyPercentage "and the difference between them
    cannot be greater than 100"; AlarmSpecification holds up to 10 alarms (MAX_REFRESH_ALARMS).
    """
    problems = []
    if refresh.max_healthy_percentage - refresh.min_healthy_percentage > 100:
        problems.append(
            f"refresh.maxHealthyPercentage ({refresh.max_healthy_percentage}) minus refresh.minHealthyPercentage "
            f"({refresh.min_healthy_percentage}) must not exceed 100"
        )
    checkpoints = list(refresh.checkpoint_percentages)
    if any(not 1 <= p <= 100 for p in checkpoints):
        problems.append(f"refresh.checkpointPercentages {checkpoints}: each must be between 1 and 100")
    elif any(b <= a for a, b in itertools.pairwise(checkpoints)):
        problems.append(f"refresh.checkpointPercentages {checkpoints}: must be unique and ascending")
    elif checkpoints and checkpoints[-1] != 100:
        problems.append(
            f"refresh.checkpointPercentages {checkpoints}: the last must be 100, or the refresh stops before "
            "replacing every instance"
        )
    if len(refresh.alarms) > MAX_REFRESH_ALARMS:
        problems.append(f"refresh.alarms: at most {MAX_REFRESH_ALARMS} alarms, got {len(refresh.alarms)}")
    return problems


def stage_problems(stages: tuple[Stage, ...]) -> list[str]:
    """What the blue-green steps would refuse in the stages, each naming its key."""
    problems = []
    for i, stage in enumerate(stages):
        if stage.strategy != "blue-green":
            continue
        for j, target in enumerate(stage.targets):
            name = target.auto_scaling_group_name
            if len(name) > MAX_BLUE_GREEN_GROUP_NAME:
                problems.append(
                    f"stages[{i}].targets[{j}].autoScalingGroupName is {len(name)} characters: in a blue-green "
                    f"stage at most {MAX_BLUE_GREEN_GROUP_NAME}, so its green groups <name>-<deployment> fit Auto "
                    f"Scaling's {MAX_GROUP_NAME}"
                )
    return problems


def require_valid_refresh(refresh: RefreshPreferences) -> None:
    """The same rules DeployConfig applies, for a step handed RefreshPreferences on their own."""
    problems = refresh_problems(refresh)
    if problems:
        raise ConfigurationError("; ".join(problems))


class DeployConfig(_Model):
    application: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,39}$")
    source: Source | None = None
    stages: tuple[Stage, ...] = Field(min_length=1)
    refresh: RefreshPreferences = RefreshPreferences()
    blue_green: BlueGreen = BlueGreen()
    retention: Retention = Retention()

    @model_validator(mode="after")
    def _rules_the_steps_apply(self) -> DeployConfig:
        problems = [*refresh_problems(self.refresh), *stage_problems(self.stages)]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def stage(self, name: str) -> Stage | None:
        return next((s for s in self.stages if s.name == name), None)

    def all_targets(self) -> tuple[Target, ...]:
        return tuple(t for s in self.stages for t in s.targets)


class ConfigurationError(RuntimeError):
    """DEPLOY_CONFIG is missing or invalid: a deployment bug, raised at cold start."""


def load_deploy_config(environ: Mapping[str, str] | None = None) -> DeployConfig:
    raw = (os.environ if environ is None else environ).get(ENV_VAR)
    if not raw:
        raise ConfigurationError(f"environment variable {ENV_VAR} is not set (the stack sets it on every function)")
    try:
        return DeployConfig.model_validate_json(raw)
    except ValidationError as exc:
        raise ConfigurationError(f"{ENV_VAR} is invalid: {exc}") from exc
