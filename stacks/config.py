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
from typing import Any

from pydantic import ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from shared.config import DeployConfig
from stacks import bounds
from stacks.config_sections import (
    PROJECT_ROOT,
    AppImage,
    Approval,
    BaseImage,
    Build,
    Environment,
    ExampleFleetConfig,
    Lock,
    Notifications,
    Webhook,
)

CONTEXT_KEY = "immutableAmi"

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
REMOVED_KEYS = {
    "powertoolsLayerVersion": (
        "was removed: the functions get the Powertools layer of the release the tests run (the "
        "aws-lambda-powertools version pinned in requirements-dev.txt), named at deploy time by Powertools' public "
        "SSM parameter for that version; delete the key"
    ),
}


class ConfigError(ValueError):
    """Invalid `cdk.json` configuration; the message names every bad key."""


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
