"""Scenarios: perturbations of the configured world, naming its targets and stages by role.

A scenario file (statemachine/scenarios/NAME.json) holds the execution input, what AWS does (statuses,
faults, lost events), the world's perturbations and what to expect. Wherever it names a group or a
stage it may use a role instead, resolved against the configuration being rehearsed:

| role | is |
|---|---|
| `@first-stage`, `@last-stage` | the first / last configured stage's name |
| `@rolling-stage`, `@blue-green-stage` | the first stage that rolls / deploys blue-green |
| `@approval-stage`, `@wave-stage` | the first stage that waits for approval / rolls more targets than its wave size |
| `@first-target`, `@last-target` | the first target's group of the first stage / the last one's of the last stage |
| `@rolling-target`, `@blue-green-target` | the first target of `@rolling-stage` / `@blue-green-stage` |
| `@wave-stage-target:N` | target N (0-based, negative from the end) of `@wave-stage` |
| `@first-wave:N` | target N (0-based, negative from the end) of the first wave of `@wave-stage` |
| `@later-waves` | every target of `@wave-stage` after its first wave (a list: spliced into the list it stands in) |
| `@past-group:K` | the group of the K-th earlier blue-green deployment of `@blue-green-target` |
| `@stage-targets:ROLE` | every group of the stage ROLE names (a list) |
| `@source-branch`, `@source-repository` | the configured source's branch and repository |
| `@source-trigger` | the trigger a push of the configured source starts with (`codecommit` or `github`) |

A role may be a key too (`"refresh": {"@first-target": [...]}`). A scenario whose roles need a shape the
configuration lacks (`"needs": ["blue-green", "waves", ...]`) declares an `overlay`: a partial configuration
(top-level keys replaced) that gives it that shape; the rehearsal then synthesizes and runs the overlaid
configuration and says so. A scenario whose behaviour depends on a setting names it in `configure` (applied
always, also reported). `"stages"` in the input may list roles.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

SCENARIOS_DIR = Path(__file__).resolve().parent.parent / "statemachine" / "scenarios"
DEFAULT_SCENARIO = "push-deploys-every-stage"
SHAPES = ("rolling", "blue-green", "approval", "waves", "two-stages", "two-targets")
_ROLE = re.compile(r"^@([a-z-]+)(?::(-?[A-Za-z0-9_-]+))?$")


class ScenarioError(ValueError):
    """A scenario that cannot run on this configuration, and why."""


def scenario_names() -> list[str]:
    return sorted(p.stem for p in SCENARIOS_DIR.glob("*.json"))


def load_scenario(name: str) -> dict[str, Any]:
    path = SCENARIOS_DIR / f"{name}.json"
    if not path.is_file():
        raise ScenarioError(f"no scenario {name!r}; known: {', '.join(scenario_names())}")
    scenario = json.loads(path.read_text())
    scenario.setdefault("name", name)
    return dict(scenario)


def shapes_of(config: dict[str, Any]) -> set[str]:
    """What a (deploy) configuration has, in the terms scenarios need."""
    stages = config["stages"]
    have = set()
    if any(s.get("strategy", "rolling") == "rolling" for s in stages):
        have.add("rolling")
    if any(s.get("strategy") == "blue-green" for s in stages):
        have.add("blue-green")
    if any(s.get("approval") for s in stages):
        have.add("approval")
    if any(_rolls_in_waves(s) for s in stages):
        have.add("waves")
    if len(stages) >= 2:
        have.add("two-stages")
    if any(len(s["targets"]) >= 2 for s in stages):
        have.add("two-targets")
    return have


def _rolls_in_waves(stage: dict[str, Any]) -> bool:
    return stage.get("strategy", "rolling") == "rolling" and len(stage["targets"]) > int(stage.get("waveSize", 1))


def missing_shapes(scenario: dict[str, Any], config: dict[str, Any]) -> list[str]:
    needs = list(scenario.get("needs", []))
    unknown = [n for n in needs if n not in SHAPES]
    if unknown:
        raise ScenarioError(f"scenario {scenario.get('name')}: unknown shape(s) {unknown}; known: {', '.join(SHAPES)}")
    have = shapes_of(config)
    return [n for n in needs if n not in have]


def changes(scenario: dict[str, Any], missing: list[str]) -> dict[str, Any]:
    """What the scenario changes in the configuration: its overlay when a shape is missing, and its `configure`
    (a setting the behaviour depends on, e.g. `retention.keepGroups`), always."""
    out: dict[str, Any] = {}
    if missing:
        if not scenario.get("overlay"):
            raise ScenarioError(f"scenario {scenario.get('name')} needs {missing} but declares no overlay")
        out.update(scenario["overlay"])
    for key, value in scenario.get("configure", {}).items():
        out[key] = {**out.get(key, {}), **value} if isinstance(value, dict) and key in out else value
    return out


def overlaid(pipeline_config: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """The pipeline configuration with `overlay` applied (top-level keys replaced; objects merged one level)."""
    config = copy.deepcopy(pipeline_config)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    return config


class Roles:
    """Resolves `@role` names against a deploy configuration."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.stages = list(config["stages"])
        self.source = config.get("source")

    def _stage(self, role: str) -> dict[str, Any]:
        tests = {
            "first-stage": lambda s: s is self.stages[0],
            "last-stage": lambda s: s is self.stages[-1],
            "rolling-stage": lambda s: s.get("strategy", "rolling") == "rolling",
            "blue-green-stage": lambda s: s.get("strategy") == "blue-green",
            "approval-stage": lambda s: bool(s.get("approval")),
            "wave-stage": _rolls_in_waves,
        }
        if role not in tests:
            raise ScenarioError(f"unknown stage role @{role}")
        stage = next((s for s in self.stages if tests[role](s)), None)
        if stage is None:
            raise ScenarioError(f"the configuration has no stage for @{role}: declare it in the scenario's needs")
        return stage

    @staticmethod
    def _groups(stage: dict[str, Any]) -> list[str]:
        return [t["autoScalingGroupName"] for t in stage["targets"]]

    def value(self, role: str, arg: str | None) -> str | list[str]:
        if role in {"source-branch", "source-repository", "source-trigger"}:
            if not self.source:
                raise ScenarioError(f"@{role}: the configuration has no source (manual runs only)")
            return str(self.source["type" if role == "source-trigger" else role.removeprefix("source-")])
        if role.endswith("-stage") and arg is None:
            return str(self._stage(role)["name"])
        if role == "first-target":
            return self._groups(self.stages[0])[0]
        if role == "last-target":
            return self._groups(self.stages[-1])[-1]
        if role in {"rolling-target", "blue-green-target"}:
            return self._groups(self._stage(role.replace("-target", "-stage")))[0]
        if role == "wave-stage-target" and arg is not None:
            return self._groups(self._stage("wave-stage"))[int(arg)]
        if role == "first-wave" and arg is not None:
            stage = self._stage("wave-stage")
            return self._groups(stage)[: int(stage.get("waveSize", 1))][int(arg)]
        if role == "later-waves":
            stage = self._stage("wave-stage")
            return self._groups(stage)[int(stage.get("waveSize", 1)) :]
        if role == "past-group" and arg is not None:
            return f"{self.value('blue-green-target', None)}-past-{int(arg)}"
        if role == "stage-targets" and arg is not None:
            return self._groups(self._stage(arg))
        raise ScenarioError(f"unknown role @{role}{':' + arg if arg else ''}")

    def resolve(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {self._scalar(k): self.resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            out: list[Any] = []
            for item in value:
                resolved = self.resolve(item)
                out.extend(resolved if isinstance(item, str) and isinstance(resolved, list) else [resolved])
            return out
        if isinstance(value, str):
            match = _ROLE.match(value)
            if match and not value.startswith(("@app-image", "@base-image", "@green")):
                return self.value(match.group(1), match.group(2))
        return value

    def _scalar(self, key: str) -> str:
        value = self.resolve(key)
        if not isinstance(value, str):
            raise ScenarioError(f"role {key} names several groups and cannot be a key")
        return value
