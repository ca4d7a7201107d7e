"""The deploy configuration as the Lambda functions see it.

The CDK app validates `cdk.json` (stacks/config.py) and hands the deploy-relevant part to every
function as the JSON environment variable DEPLOY_CONFIG. It is parsed once, at cold start, by
`load_deploy_config()`; logic receives the parsed object and never reads the environment.
tests/infra pins that what the stack writes parses with this model.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

ENV_VAR = "DEPLOY_CONFIG"


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, extra="forbid")


class Target(_Model):
    auto_scaling_group_name: str = Field(min_length=1, max_length=255)
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
    alarms: tuple[str, ...] = ()
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
    alarms: tuple[str, ...] = ()
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


class Source(_Model):
    type: Literal["codecommit", "github"]
    repository: str = Field(min_length=1)
    branch: str = Field(min_length=1)


class DeployConfig(_Model):
    application: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,39}$")
    source: Source | None = None
    stages: tuple[Stage, ...] = Field(min_length=1)
    refresh: RefreshPreferences = RefreshPreferences()
    blue_green: BlueGreen = BlueGreen()
    retention: Retention = Retention()

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
