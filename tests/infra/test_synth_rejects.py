"""`cdk synth` refuses every configuration a deployment would refuse later, naming the key path.

Without these rules a value AWS or a step refuses (StartInstanceRefresh's preferences, a blue-green group name,
Image Builder's infrastructure, the partition the layer exists in) passes synth and fails only after a bake.
Each rule lives on the configuration models: lambdas/shared/config.py for what the functions see (synth's
PipelineConfig is a DeployConfig, so synth and every cold start run the same code), stacks/config.py for the
synth-only sections. RULES lists them; the last tests enumerate every place in lambdas/ that raises about the
configuration and fail when one appears that RULES does not cover, so the list cannot drift from the code.
"""

from __future__ import annotations

import ast
import copy
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import BaseModel

from shared.config import (
    ConfigurationError,
    DeployConfig,
    RefreshPreferences,
    load_deploy_config,
    require_valid_refresh,
)
from stacks.config import PROJECT_ROOT, ConfigError, load_config
from tests.infra.test_config import MINIMAL

LAMBDAS = PROJECT_ROOT / "lambdas"
DEPLOY_SECTIONS = ("application", "source", "stages", "refresh", "blueGreen", "retention")
BLUE_GREEN_STAGE = {
    "name": "prod",
    "strategy": "blue-green",
    "targets": [{"autoScalingGroupName": "g" * 254, "launchTemplateId": "lt-0123456789abcdef0"}],
}


@dataclass(frozen=True)
class Rule:
    key: str  # the key path the message names
    settings: tuple[tuple[str, Any], ...]  # dotted paths (list items by index) set on MINIMAL
    fragment: str  # the reason, as synth says it
    deploy: bool = True  # part of DEPLOY_CONFIG: the functions refuse it at cold start too
    cold_start_fragment: str | None = None  # pydantic's own wording, where the handler's message keeps it

    @property
    def id(self) -> str:
        return f"{self.key}={json.dumps(self.settings[-1][1])[:40]}"


RULES = (
    # StartInstanceRefresh Preferences (start_instance_refresh; rollback reuses them)
    Rule("refresh.checkpointPercentages", (("refresh.checkpointPercentages", [20, 50]),), "the last must be 100"),
    Rule("refresh.checkpointPercentages", (("refresh.checkpointPercentages", [50, 50, 100]),), "unique and ascending"),
    Rule("refresh.checkpointPercentages", (("refresh.checkpointPercentages", [50, 20, 100]),), "unique and ascending"),
    Rule("refresh.checkpointPercentages", (("refresh.checkpointPercentages", [0, 100]),), "between 1 and 100"),
    Rule("refresh.checkpointPercentages", (("refresh.checkpointPercentages", [50, 101]),), "between 1 and 100"),
    Rule(
        "refresh.maxHealthyPercentage",
        (("refresh.minHealthyPercentage", 50), ("refresh.maxHealthyPercentage", 200)),
        "minus refresh.minHealthyPercentage (50) must not exceed 100",
    ),
    Rule("refresh.alarms", (("refresh.alarms", [f"alarm-{i}" for i in range(11)]),), "at most 10 alarms, got 11"),
    Rule(
        "refresh.alarms[0]",
        (("refresh.alarms", [""]),),
        "String should have at least 1 character",
    ),
    Rule(
        "refresh.alarms[1]",
        (("refresh.alarms", ["5xx", "a" * 256]),),
        "String should have at most 255 characters",
    ),
    # The blue-green soak reads its alarms with DescribeAlarms (check_green_group), names of 1 to 255 characters
    Rule("blueGreen.alarms[0]", (("blueGreen.alarms", ["a" * 256]),), "String should have at most 255 characters"),
    # publish_launch_template_version prunes versions and must keep the default and the previous one
    Rule(
        "retention.keepLaunchTemplateVersions",
        (("retention.keepLaunchTemplateVersions", 1),),
        "must be >= 2, got 1",
        cold_start_fragment="greater than or equal to 2",
    ),
    # create_green_group names green groups <configured>-<deployment> within Auto Scaling's 255 characters
    Rule(
        "stages[0].targets[0].autoScalingGroupName",
        (("stages", [BLUE_GREEN_STAGE]),),
        "in a blue-green stage at most 253",
    ),
    # Image Builder's CreateInfrastructureConfiguration (the stack, before the first bake)
    Rule(
        "build.securityGroupIds",
        (("build.subnetId", "subnet-0123456789abcdef0"),),
        "Image Builder refuses a subnet without security groups",
        deploy=False,
    ),
    Rule(
        "build.securityGroupIds",
        (("build.securityGroupIds", ["sg-0123456789abcdef0"]),),
        "needs build.subnetId",
        deploy=False,
    ),
    # The Powertools layer is named by an SSM parameter that exists in the commercial partition only
    Rule("environment.region", (("environment.region", "cn-north-1"),), "aws-cn partition", deploy=False),
    Rule("environment.region", (("environment.region", "us-gov-west-1"),), "aws-us-gov partition", deploy=False),
)
DEPLOY_RULES = tuple(r for r in RULES if r.deploy)
RULE_KEYS = frozenset(r.key for r in RULES)

# Every place in lambdas/ that raises about the configuration, and the rules that keep it from ever firing on a
# configuration synth accepted. A new site fails test_every_configuration_check_in_the_functions_is_a_synth_rule.
RAISE_SITES: dict[tuple[str, str], frozenset[str]] = {
    # raises whatever DeployConfig (with its rules) refuses in DEPLOY_CONFIG
    ("shared/config.py", "load_deploy_config"): frozenset(r.key for r in DEPLOY_RULES),
    # start_instance_refresh and rollback re-apply the refresh rules to the preferences they are handed
    ("shared/config.py", "require_valid_refresh"): frozenset(
        {"refresh.checkpointPercentages", "refresh.maxHealthyPercentage", "refresh.alarms"}
    ),
    ("publish_launch_template_version/logic.py", "plan_prune"): frozenset({"retention.keepLaunchTemplateVersions"}),
    # names no key (the scan cannot find it), so listed by hand: it refuses a group name with no room for a suffix
    ("shared/blue_green.py", "green_group_name"): frozenset({"stages[0].targets[0].autoScalingGroupName"}),
}
# Raise sites the scan finds that are not about the configuration, and why.
NOT_CONFIGURATION = {
    ("shared/environment.py", "load_environment"): "the function's environment variables, set by the stack itself",
}


def configured(rule: Rule) -> dict[str, Any]:
    config = copy.deepcopy(MINIMAL)
    for path, value in rule.settings:
        node: Any = config
        *parents, leaf = path.split(".")
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        node[leaf] = value
    return config


def deploy_config_json(config: dict[str, Any]) -> str:
    """DEPLOY_CONFIG as a function would receive it, had synth let the value through."""
    return json.dumps({key: config[key] for key in DEPLOY_SECTIONS if key in config})


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.id)
def test_synth_refuses_what_a_deployment_would_refuse_later(rule: Rule) -> None:
    # Given a configuration with one value a step (or AWS) would refuse after synth
    config = configured(rule)

    # When it is loaded as `cdk synth` loads it (app.py: load_config)
    with pytest.raises(ConfigError) as excinfo:
        load_config(config)

    # Then synth fails naming the key path and the reason
    assert rule.key in str(excinfo.value)
    assert rule.fragment in str(excinfo.value)


@pytest.mark.parametrize("rule", DEPLOY_RULES, ids=lambda r: r.id)
def test_the_functions_refuse_the_same_values_at_cold_start_with_the_same_rule(rule: Rule) -> None:
    # Given the DEPLOY_CONFIG a function would get with that value
    environ = {"DEPLOY_CONFIG": deploy_config_json(configured(rule))}

    # When a handler parses it at cold start / Then the same model refuses it, naming the key
    with pytest.raises(ConfigurationError) as excinfo:
        load_deploy_config(environ)

    dotted = re.sub(r"\[(\d+)\]", r".\1", rule.key)  # pydantic's own rendering of a location
    assert rule.key in str(excinfo.value) or dotted in str(excinfo.value)
    assert (rule.cold_start_fragment or rule.fragment) in str(excinfo.value)


@pytest.mark.parametrize(
    "rule",
    [r for r in DEPLOY_RULES if r.key in RAISE_SITES[("shared/config.py", "require_valid_refresh")]],
    ids=lambda r: r.id,
)
def test_the_refresh_step_applies_the_same_rules_to_preferences_it_is_handed(rule: Rule) -> None:
    # Given the preferences alone, as start_instance_refresh and rollback receive them
    refresh = RefreshPreferences.model_validate(configured(rule)["refresh"])

    # When / Then they are refused with the message synth gives
    with pytest.raises(ConfigurationError, match=re.escape(rule.fragment)):
        require_valid_refresh(refresh)


def test_the_example_configuration_passes_every_rule() -> None:
    config = load_config("config/example.jsonc")

    parsed = DeployConfig.model_validate_json(config.deploy_config_json())  # as every function parses it
    assert parsed.model_dump() == config.deploy_config().model_dump()


# --- every configuration check in lambdas/ is a rule here ---------------------------------------------------------


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds: `RefreshPreferences`, `Source | None`, `tuple[Stage, ...]`."""
    for candidate in (annotation, *getattr(annotation, "__args__", ())):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _key_names() -> frozenset[str]:
    """The configuration keys a message about the configuration would name: `section.key`, and on their own the
    keys of the sections no step payload shares (refresh, blueGreen, retention)."""
    names = set()
    for section, info in DeployConfig.model_fields.items():
        alias = info.alias or section
        model = _model_of(info.annotation)
        for field, sub in (model.model_fields if model else {}).items():
            leaf = sub.alias or field
            names.add(f"{alias}.{leaf}")
            if alias in {"refresh", "blueGreen", "retention"} and leaf != leaf.lower():
                names.add(leaf)
    return frozenset(names)


@dataclass(frozen=True)
class RaiseSite:
    module: str
    function: str
    exception: str
    line: int


def _raise_sites(tree: ast.AST, module: str, keys: frozenset[str]) -> Iterator[RaiseSite]:
    """`raise ConfigurationError(...)` anywhere, and any raise whose message names a configuration key."""

    def visit(node: ast.AST, function: str) -> Iterator[RaiseSite]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                yield from visit(child, child.name)
                continue
            if isinstance(child, ast.Raise) and isinstance(child.exc, ast.Call):
                name = ast.unparse(child.exc.func).rsplit(".", 1)[-1]
                text = " ".join(
                    c.value for c in ast.walk(child.exc) if isinstance(c, ast.Constant) and isinstance(c.value, str)
                )
                if name == "ConfigurationError" or any(re.search(rf"\b{re.escape(k)}\b", text) for k in keys):
                    yield RaiseSite(module, function, name, child.lineno)
            yield from visit(child, function)

    yield from visit(tree, "<module>")


def _scan() -> list[RaiseSite]:
    keys = _key_names()
    sites: list[RaiseSite] = []
    for path in sorted(LAMBDAS.rglob("*.py")):
        module = path.relative_to(LAMBDAS).as_posix()
        sites += _raise_sites(ast.parse(path.read_text(encoding="utf-8")), module, keys)
    return sites


def _raises_in(module: str, function: str) -> bool:
    tree = ast.parse((LAMBDAS / module).read_text(encoding="utf-8"))
    functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == function]
    return any(isinstance(n, ast.Raise) for f in functions for n in ast.walk(f))


def test_the_scan_recognises_a_configuration_check_in_a_step() -> None:
    # Given a step that checks a configuration value itself (what this test exists to catch)
    code = (
        "def run(config):\n"
        "    if config.refresh.bake_time_seconds > 3600:\n"
        "        raise InvalidInput(f'refresh.bakeTimeSeconds {config.refresh.bake_time_seconds}: too long')\n"
        "    if not config.retention.keep_images:\n"
        "        raise ConfigurationError('no images kept')\n"
    )

    # When it is scanned / Then both raises are found
    found = {(s.function, s.exception) for s in _raise_sites(ast.parse(code), "step/logic.py", _key_names())}
    assert found == {("run", "InvalidInput"), ("run", "ConfigurationError")}


def test_every_configuration_check_in_the_functions_is_a_synth_rule() -> None:
    # Given every place in lambdas/ that raises ConfigurationError or names a configuration key when it raises
    found = _scan()

    # Then each is a known site whose rules synth applies (or is not about the configuration at all)
    unknown = [s for s in found if (s.module, s.function) not in RAISE_SITES | NOT_CONFIGURATION]
    assert not unknown, (
        "configuration checks that synth does not run: "
        + "; ".join(f"lambdas/{s.module}:{s.line} {s.function} raises {s.exception}" for s in unknown)
        + ". Move the rule into lambdas/shared/config.py (a validator on the model) and add it to RULES and "
        "RAISE_SITES in this file."
    )


def test_every_listed_site_still_raises_and_is_covered_by_rules() -> None:
    for (module, function), keys in RAISE_SITES.items():
        assert _raises_in(module, function), f"lambdas/{module} {function} no longer raises: drop it from RAISE_SITES"
        assert keys, f"lambdas/{module} {function}: no rule covers it"
        assert keys <= RULE_KEYS, f"lambdas/{module} {function}: rules {sorted(keys - RULE_KEYS)} are not in RULES"
    for module, function in NOT_CONFIGURATION:
        assert _raises_in(module, function), f"lambdas/{module} {function} no longer raises: drop it"


def test_only_the_configuration_model_raises_configuration_errors() -> None:
    # The functions' configuration errors come from the model's rules, not from checks of their own
    raising = {s.module for s in _scan() if s.exception == "ConfigurationError"}

    assert raising == {"shared/config.py", "shared/environment.py"}
