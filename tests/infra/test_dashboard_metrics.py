"""Every custom metric the dashboard or an alarm names is one some handler emits: no widget plots a metric nothing
sends.

Named: the synthesized template's dashboards (DashboardBody, a JSON document whose widgets' `metrics` arrays are
[namespace, metric name, dimension name, value, ..., {options}], "." repeating the previous entry's value: CloudWatch
API Reference, "Dashboard Body Structure and Syntax", metrics array format) and alarms (MetricName + Namespace, or
each Metrics[].MetricStat.Metric), in the Powertools namespace the functions use (stacks.lambda_function
METRICS_NAMESPACE). Emitted: every `add_metric(name="...")` under lambdas/, read from the code (AST); a name that is
not a string literal is refused, since nobody could tell what it emits.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stacks.lambda_function import METRICS_NAMESPACE
from tests.infra.conftest import Synthesized

LAMBDAS = Path(__file__).resolve().parents[2] / "lambdas"


def emitted_names(source: str, where: str = "<source>") -> tuple[set[str], list[str]]:
    """The literal names a module's add_metric calls emit, and where a call's name is not a literal."""
    names: set[str] = set()
    problems: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
        if called != "add_metric":
            continue
        name = next((k.value for k in node.keywords if k.arg == "name"), node.args[0] if node.args else None)
        if isinstance(name, ast.Constant) and isinstance(name.value, str):
            names.add(name.value)
        else:
            problems.append(f"{where}:{node.lineno}: add_metric with a name that is not a string literal")
    return names, problems


def emitted_by_handlers() -> tuple[set[str], list[str]]:
    names: set[str] = set()
    problems: list[str] = []
    for path in sorted(LAMBDAS.rglob("*.py")):
        found, wrong = emitted_names(path.read_text(), str(path.relative_to(LAMBDAS)))
        names |= found
        problems += wrong
    return names, problems


def _text(value: Any) -> str:
    """A DashboardBody (a string, or Fn::Join of strings and tokens) as text; a token becomes TOKEN."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return str(separator).join(_text(p) for p in parts)
    return "TOKEN"


def _widget_metrics(widget: dict[str, Any]) -> Iterator[tuple[str, str]]:
    previous: list[Any] = []
    for entry in widget.get("properties", {}).get("metrics", []):
        fields = [f for f in entry if not isinstance(f, dict)]  # the trailing {options}, or a math expression
        if not fields:
            continue
        resolved = [previous[i] if f == "." and i < len(previous) else f for i, f in enumerate(fields)]
        previous = resolved
        if len(resolved) >= 2:
            yield str(resolved[0]), str(resolved[1])


def named_metrics(template: dict[str, Any]) -> dict[str, set[str]]:
    """Custom metric name → the dashboards and alarms that name it (METRICS_NAMESPACE only)."""
    named: dict[str, set[str]] = {}
    for logical_id, resource in template.get("Resources", {}).items():
        props = resource.get("Properties", {})
        pairs: list[tuple[str, str]] = []
        if resource["Type"] == "AWS::CloudWatch::Dashboard":
            body = json.loads(_text(props["DashboardBody"]))
            for widget in body.get("widgets", []):
                pairs += list(_widget_metrics(widget))
        elif resource["Type"] == "AWS::CloudWatch::Alarm":
            if "MetricName" in props:
                pairs.append((str(props.get("Namespace")), str(props["MetricName"])))
            for query in props.get("Metrics", []):
                metric = query.get("MetricStat", {}).get("Metric")
                if metric:
                    pairs.append((str(metric.get("Namespace")), str(metric["MetricName"])))
        for namespace, name in pairs:
            if namespace == METRICS_NAMESPACE:
                named.setdefault(name, set()).add(logical_id)
    return named


def unemitted(template: dict[str, Any], emitted: set[str]) -> dict[str, set[str]]:
    return {name: where for name, where in named_metrics(template).items() if name not in emitted}


def test_every_metric_a_widget_or_alarm_names_is_emitted_by_a_handler(synthesized: Synthesized) -> None:
    # Given what the handlers emit (literal names only) and what the template's dashboard and alarms name
    emitted, problems = emitted_by_handlers()
    named = named_metrics(synthesized.json)
    # Then every name is emitted, and the dashboard does name the deployment outcomes and durations
    assert problems == []
    assert unemitted(synthesized.json, emitted) == {}
    assert {
        "DeploymentStarted",
        "DeploymentSucceeded",
        "DeploymentFailed",
        "RolledBack",
        "Superseded",
        "BakeDuration",
        "RefreshDuration",
        "ImagesPruned",
    } <= set(named)


def test_a_widget_naming_a_metric_nothing_emits_is_found() -> None:
    # Given a dashboard (a Fn::Join body, as CDK writes it) and an alarm naming one emitted and one unknown metric
    widget = {
        "type": "metric",
        "properties": {
            "metrics": [
                [METRICS_NAMESPACE, "DeploymentStarted", "service", "web-app"],
                [".", "NothingEmitsThis", ".", ".", {"stat": "Sum"}],
                [{"expression": "m1 + m2", "id": "e1"}],
                ["AWS/States", "ExecutionsFailed"],
            ],
            "region": "TOKEN",
        },
    }
    body = json.dumps({"widgets": [widget]})
    head, tail = body.split('"TOKEN"')
    template = {
        "Resources": {
            "Dashboard": {
                "Type": "AWS::CloudWatch::Dashboard",
                "Properties": {"DashboardBody": {"Fn::Join": ["", [head, '"', {"Ref": "AWS::Region"}, '"', tail]]}},
            },
            "Alarm": {
                "Type": "AWS::CloudWatch::Alarm",
                "Properties": {"Namespace": METRICS_NAMESPACE, "MetricName": "NorThis"},
            },
        }
    }
    # When it is checked against what the handlers emit
    emitted, _ = emitted_by_handlers()
    # Then the unknown names are reported with where they are named; other namespaces are not ours to check
    assert unemitted(template, emitted) == {"NothingEmitsThis": {"Dashboard"}, "NorThis": {"Alarm"}}


@pytest.mark.parametrize(
    "call",
    ['metrics.add_metric(name=NAMES[status], unit="Count", value=1)', 'metrics.add_metric(f"{x}Done", "Count", 1)'],
)
def test_a_metric_name_that_is_not_a_literal_is_refused(call: str) -> None:
    # Given a module emitting a metric whose name only the running code knows
    names, problems = emitted_names(f"def f(status, x):\n    {call}\n", "step/logic.py")
    # Then it is reported, and nothing is taken as emitted
    assert names == set()
    assert problems == ["step/logic.py:2: add_metric with a name that is not a string literal"]


def test_literal_names_are_read_by_keyword_or_position() -> None:
    names, problems = emitted_names('m.add_metric(name="A", unit=u, value=1)\nadd_metric("B", u, 1)\n')

    assert (names, problems) == ({"A", "B"}, [])
