"""Scheduled base rebuilds that fail reach a person: what the template and the ASL promise.

- The workflow's own failure path ends only through a notification (DeploymentRejected, DeploymentFailed), and
  executions ending outside it (TIMED_OUT, ABORTED, the history quota) go to finish_execution, which publishes
  DeploymentFailed (tests/unit/test_finish_execution.py).
- On top of that, every scheduled rebuild that ends FAILED, TIMED_OUT or ABORTED publishes ScheduledRebuildFailed,
  which names the schedule; BaseRebuildStale alarms when scheduled rebuilds stop succeeding; Image Builder's
  "pipeline automatically disabled" event for this application's pipeline is forwarded.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from stacks.observability import PIPELINE_AUTO_DISABLED, stale_window
from stacks.triggers import SCHEDULED_REBUILD_REQUEST, schedule_rule_name, scheduled_rebuild_input
from tests.infra.conftest import Synthesized
from tests.infra.event_pattern import matches
from tests.infra.test_asl import asl

ACCOUNT, REGION = "123456789012", "eu-west-1"
STATE_MACHINE = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:web-app-deploy"
PSEUDO = {"AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": ACCOUNT}
DAY = 86_400


def render(value: Any, refs: dict[str, str]) -> Any:
    """A template value with Ref and Fn::Join resolved: pseudo parameters, and `refs` for resources."""
    if isinstance(value, dict):
        if set(value) == {"Ref"}:
            return {**PSEUDO, **refs}[value["Ref"]]
        if set(value) == {"Fn::Join"}:
            separator, parts = value["Fn::Join"]
            return separator.join(str(render(part, refs)) for part in parts)
        return {key: render(item, refs) for key, item in value.items()}
    if isinstance(value, list):
        return [render(item, refs) for item in value]
    return value


def rule(synth: Synthesized, construct_id: str) -> dict[str, Any]:
    found = [r["Properties"] for k, r in synth.resources("AWS::Events::Rule").items() if construct_id in k]
    assert len(found) == 1, f"{construct_id}: {len(found)} rules"
    return found[0]


def logical_id(synth: Synthesized, type_name: str, construct_id: str) -> str:
    return next(k for k in synth.resources(type_name) if construct_id in k)


def stale_alarm(synth: Synthesized) -> dict[str, Any]:
    return next(
        a["Properties"] for k, a in synth.resources("AWS::CloudWatch::Alarm").items() if "BaseRebuildStale" in k
    )


def failure_pattern(synth: Synthesized) -> dict[str, Any]:
    machine = logical_id(synth, "AWS::StepFunctions::StateMachine", "Workflow")
    return dict(render(rule(synth, "ScheduledRebuildFailed")["EventPattern"], {machine: STATE_MACHINE}))


def execution_event(status: str, execution_input: str, machine: str = STATE_MACHINE) -> dict[str, Any]:
    """A "Step Functions Execution Status Change" event (https://docs.aws.amazon.com/step-functions/latest/dg/cw-events.html)."""
    return {
        "source": "aws.states",
        "detail-type": "Step Functions Execution Status Change",
        "resources": [f"{machine.replace(':stateMachine:', ':execution:')}:0f1e2d3c"],
        "detail": {
            "executionArn": f"{machine.replace(':stateMachine:', ':execution:')}:0f1e2d3c",
            "stateMachineArn": machine,
            "status": status,
            "input": execution_input,
            "error": "ImageBuildFailed" if status == "FAILED" else None,
        },
    }


SCHEDULED = json.dumps(SCHEDULED_REBUILD_REQUEST, separators=(",", ":"))
MANUAL_REBUILD = json.dumps({"action": "rebuild-base"})
DEPLOY = json.dumps({"action": "deploy", "commit": "3f2c1e9", "trigger": "codecommit"})


# -- Every failed scheduled rebuild is published, saying it was the schedule's ----------------------------------


def test_the_failure_rule_recognises_the_schedules_executions_by_the_input_the_schedule_sends(
    synthesized: Synthesized,
) -> None:
    schedule = next(
        r["Properties"]
        for r in synthesized.resources("AWS::Events::Rule").values()
        if "ScheduleExpression" in r["Properties"]
    )

    assert schedule["Targets"][0]["Input"] == scheduled_rebuild_input() == SCHEDULED
    assert failure_pattern(synthesized)["detail"]["input"] == [schedule["Targets"][0]["Input"]]


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (execution_event("FAILED", SCHEDULED), True),
        (execution_event("TIMED_OUT", SCHEDULED), True),
        (execution_event("ABORTED", SCHEDULED), True),
        (execution_event("SUCCEEDED", SCHEDULED), False),
        (execution_event("RUNNING", SCHEDULED), False),
        (execution_event("FAILED", MANUAL_REBUILD), False),  # a person started it: DeploymentFailed tells them
        (execution_event("FAILED", DEPLOY), False),
        (execution_event("FAILED", SCHEDULED, machine=f"{STATE_MACHINE}-other"), False),
    ],
)
def test_every_failed_end_of_a_scheduled_rebuild_and_nothing_else_is_published(
    synthesized: Synthesized, event: dict[str, Any], expected: bool
) -> None:
    assert matches(failure_pattern(synthesized), event) is expected


def test_the_failure_notification_names_the_schedule_the_status_and_the_error(synthesized: Synthesized) -> None:
    target = rule(synthesized, "ScheduledRebuildFailed")["Targets"][0]
    topic = logical_id(synthesized, "AWS::SNS::Topic", "Notifications")
    transformer = target["InputTransformer"]

    assert target["Arn"] == {"Ref": topic}
    assert set(transformer["InputPathsMap"].values()) == {
        "$.detail.status",
        "$.detail.executionArn",
        "$.detail.error",
        "$.detail.cause",
    }
    template = transformer["InputTemplate"]
    assert '"event":"ScheduledRebuildFailed"' in template
    assert "The scheduled base image rebuild of web-app (cron(0 3 * * ? *)) ended <detail-status>" in template


def test_the_workflows_own_failure_ends_are_entered_only_through_a_notification() -> None:
    # Given the ASL's top-level Fail states (Map-internal ones fail the Map, whose Catch leads to NotifyFailure)
    states = asl()["States"]
    fails = {name for name, state in states.items() if state["Type"] == "Fail"}

    # When every transition into them is collected
    into: dict[str, set[str]] = {name: set() for name in fails}
    for name, state in states.items():
        nexts = [state.get("Next"), state.get("Default"), *(c["Next"] for c in state.get("Choices", []))]
        nexts += [c["Next"] for c in state.get("Catch", [])]
        for target in filter(None, nexts):
            if target in fails:
                into[target].add(name)

    # Then each comes only from the notify step (which publishes to the notification topic)
    assert fails == {"Rejected", "DeploymentFailed"}
    for fail, sources in into.items():
        assert sources, fail
        for source in sources:
            assert states[source]["Resource"] == "arn:aws:states:::lambda:invoke", (fail, source)
            assert states[source]["Parameters"]["FunctionName"] == "${NotifyFunctionArn}"
    assert states["DeployStages"]["Catch"][0] == {
        "ErrorEquals": ["States.ALL"],
        "ResultPath": "$.error",
        "Next": "ReleaseLockAfterFailure",
    }
    assert states["ReleaseLockAfterFailure"]["Next"] == "NotifyFailure"


@pytest.mark.parametrize("status", ["FAILED", "TIMED_OUT", "ABORTED"])
def test_a_scheduled_rebuild_that_ends_outside_the_failure_path_also_reaches_finish_execution(
    synthesized: Synthesized, status: str
) -> None:
    machine = logical_id(synthesized, "AWS::StepFunctions::StateMachine", "Workflow")
    ends = render(rule(synthesized, "WorkflowExecutionEnds")["EventPattern"], {machine: STATE_MACHINE})

    assert matches(ends, execution_event(status, SCHEDULED))


# -- BaseRebuildStale: scheduled rebuilds stopped succeeding --------------------------------------------------


def test_the_stale_alarm_counts_scheduled_starts_minus_scheduled_failures_and_alarms_on_no_data(
    synthesized: Synthesized,
) -> None:
    alarm = stale_alarm(synthesized)
    metrics = {m["Id"]: m for m in alarm["Metrics"]}
    failure_rule = logical_id(synthesized, "AWS::Events::Rule", "ScheduledRebuildFailed")
    schedule_name = next(
        r["Properties"]["Name"]
        for r in synthesized.resources("AWS::Events::Rule").values()
        if "ScheduleExpression" in r["Properties"]
    )

    assert alarm["ComparisonOperator"] == "LessThanThreshold"
    assert alarm["Threshold"] == 1
    assert alarm["EvaluationPeriods"] == 1
    assert alarm["TreatMissingData"] == "breaching"
    assert next(m for m in alarm["Metrics"] if m.get("ReturnData", True))["Expression"] == (
        "FILL(started, 0) - FILL(notStarted, 0) - FILL(failed, 0)"
    )
    stats = {key: metrics[key]["MetricStat"] for key in ("started", "notStarted", "failed")}
    assert {key: (s["Metric"]["Namespace"], s["Metric"]["MetricName"]) for key, s in stats.items()} == {
        "started": ("AWS/Events", "Invocations"),
        "notStarted": ("AWS/Events", "FailedInvocations"),
        "failed": ("AWS/Events", "Invocations"),
    }
    assert schedule_name == schedule_rule_name("web-app")
    assert stats["started"]["Metric"]["Dimensions"] == [{"Name": "RuleName", "Value": schedule_name}]
    assert stats["notStarted"]["Metric"]["Dimensions"] == [{"Name": "RuleName", "Value": schedule_name}]
    assert stats["failed"]["Metric"]["Dimensions"] == [{"Name": "RuleName", "Value": {"Ref": failure_rule}}]
    assert {s["Period"] for s in stats.values()} == {3 * DAY}
    assert {s["Stat"] for s in stats.values()} == {"Sum"}


def test_the_stale_alarm_notifies_the_topic_and_is_on_the_dashboard(synthesized: Synthesized) -> None:
    topic = logical_id(synthesized, "AWS::SNS::Topic", "Notifications")
    alarm_id = logical_id(synthesized, "AWS::CloudWatch::Alarm", "BaseRebuildStale")
    dashboard = json.dumps(next(iter(synthesized.resources("AWS::CloudWatch::Dashboard").values())))

    assert stale_alarm(synthesized)["AlarmActions"] == [{"Ref": topic}]
    assert alarm_id in dashboard


@pytest.mark.parametrize(
    ("expression", "window_seconds"),
    [
        ("cron(0 3 * * ? *)", 3 * DAY),  # the default: daily
        ("cron(0 */6 * * ? *)", 3 * DAY),  # several times a day: counted as daily, the longer window
        ("rate(1 day)", 3 * DAY),
        ("rate(12 hours)", 36 * 3600),
        ("rate(5 minutes)", DAY),  # never shorter than a day: a rebuild takes hours
        ("rate(2 days)", None),  # three runs do not fit the 7 days an alarm looks back
        ("cron(0 3 ? * MON *)", None),  # weekly
        ("cron(0 3 1 * ? *)", None),  # monthly
    ],
)
def test_the_stale_window_is_three_runs_for_schedules_that_run_at_least_daily(
    expression: str, window_seconds: int | None
) -> None:
    window = stale_window(expression)

    assert (window.to_seconds() if window else None) == window_seconds


# -- Image Builder's own auto-disable --------------------------------------------------------------------------


def test_image_builder_disabling_this_applications_pipeline_is_published(synthesized: Synthesized) -> None:
    properties = rule(synthesized, "PipelineAutoDisabled")
    pattern = render(properties["EventPattern"], {})
    names = sorted(p["Properties"]["Name"] for p in synthesized.resources("AWS::ImageBuilder::ImagePipeline").values())
    pipeline_arn = f"arn:aws:imagebuilder:{REGION}:{ACCOUNT}:image-pipeline/web-app-base"
    event = {
        "source": "aws.imagebuilder",
        "detail-type": PIPELINE_AUTO_DISABLED,
        "resources": [pipeline_arn],
        "detail": {"consecutive-failures": "5"},
    }

    assert PIPELINE_AUTO_DISABLED == "EC2 Image Builder Image Pipeline Automatically Disabled"
    assert sorted(arn.rsplit("/", 1)[1] for arn in pattern["resources"]) == names == ["web-app-base"]
    assert matches(pattern, event)
    assert not matches(pattern, {**event, "resources": [pipeline_arn.replace("web-app-base", "other-app-base")]})
    assert not matches(pattern, {**event, "detail-type": "EC2 Image Builder Image State Change"})
    target = properties["Targets"][0]
    assert target["Arn"] == {"Ref": logical_id(synthesized, "AWS::SNS::Topic", "Notifications")}
    assert target["InputTransformer"]["InputPathsMap"]["detail-consecutive-failures"] == "$.detail.consecutive-failures"
    assert '"event":"ImagePipelineAutoDisabled"' in target["InputTransformer"]["InputTemplate"]


def test_eventbridge_may_publish_to_the_encrypted_topic(synthesized: Synthesized) -> None:
    # EventBridge publishes to SNS through the topic policy, and needs the topic key's policy for an encrypted one
    # (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-use-resource-based.html)
    topic_policy = json.dumps(next(iter(synthesized.resources("AWS::SNS::TopicPolicy").values())))
    key = next(iter(synthesized.resources("AWS::KMS::Key").values()))["Properties"]["KeyPolicy"]["Statement"]

    assert '"Service": "events.amazonaws.com"' in topic_policy
    assert any(
        s.get("Principal") == {"Service": "events.amazonaws.com"}
        and {"kms:Decrypt", "kms:GenerateDataKey*"} <= set(s["Action"])
        for s in key
    )


# -- Without a schedule ----------------------------------------------------------------------------------------


def test_without_a_schedule_there_is_no_rebuild_failure_rule_nor_stale_alarm(synthesized_github: Synthesized) -> None:
    rules = synthesized_github.resources("AWS::Events::Rule")
    alarms = synthesized_github.resources("AWS::CloudWatch::Alarm")

    assert not [k for k in rules if "ScheduledRebuildFailed" in k]
    assert not [r for r in rules.values() if "ScheduleExpression" in r["Properties"]]
    assert not [k for k in alarms if "BaseRebuildStale" in k]
    assert "aws.states" not in json.dumps(
        [r["Properties"].get("EventPattern") for k, r in rules.items() if "Observability" in k]
    )


def test_without_a_schedule_image_builders_auto_disable_is_still_published(synthesized_github: Synthesized) -> None:
    # An Image Builder schedule added to the pipelines would most likely replace ours: the rule stays.
    assert rule(synthesized_github, "PipelineAutoDisabled")["EventPattern"]["detail-type"] == [PIPELINE_AUTO_DISABLED]
