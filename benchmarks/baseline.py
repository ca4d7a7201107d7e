"""The seed pipeline's orchestration, as a state machine, for the side-by-side benchmark.

What users run today (README, "Performance"): bake, then for each group create the launch template version,
start the refresh and poll it every 15 s (Wait → describe → Choice) until it is done; the image build
is polled the same way. It calls the same step functions as ours (so only the orchestration differs)
and uses the same `${...}` placeholders, so the rehearsal runs it unchanged.
"""

from __future__ import annotations

import json
from typing import Any

from stacks.steps import BY_FOLDER

POLL_SECONDS = 15


def _lambda(step: str, payload: dict[str, Any], result_path: str, nxt: str) -> dict[str, Any]:
    """A task invoking the function of `step` (a folder of stacks.steps) by its placeholder in the table."""
    placeholder = BY_FOLDER[step].placeholder
    if placeholder is None:
        raise ValueError(f"{step} is invoked by EventBridge, not by a state machine")
    return {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": f"${{{placeholder}}}", "Payload": payload},
        "ResultSelector": {"result.$": "$.Payload"},
        "ResultPath": result_path,
        "TimeoutSeconds": 60,
        "Next": nxt,
    }


def _poll(name: str, check: str) -> dict[str, dict[str, Any]]:
    return {name: {"Type": "Wait", "Seconds": POLL_SECONDS, "Next": check}}


def baseline_asl() -> str:
    target = {
        "Publish": _lambda(
            "publish_launch_template_version",
            {"executionId.$": "$.executionId", "target.$": "$.target", "amiId.$": "$.amiId", "commit.$": "$.commit"},
            "$.launchTemplate",
            "StartRefresh",
        ),
        "StartRefresh": _lambda(
            "start_instance_refresh",
            {
                "executionId.$": "$.executionId",
                "target.$": "$.target",
                "launchTemplateVersion.$": "$.launchTemplate.result.version",
            },
            "$.refresh",
            "WaitRefresh",
        ),
        **_poll("WaitRefresh", "DescribeRefresh"),
        "DescribeRefresh": _lambda(
            "check_refresh",
            {
                "executionId.$": "$.executionId",
                "target.$": "$.target",
                "instanceRefreshId.$": "$.refresh.result.instanceRefreshId",
                "launchTemplateVersion.$": "$.launchTemplate.result.version",
            },
            "$.health",
            "RefreshDone",
        ),
        "RefreshDone": {
            "Type": "Choice",
            "Choices": [
                {"Variable": "$.health.result.verdict", "StringEquals": "Healthy", "Next": "GroupDone"},
                {"Variable": "$.health.result.verdict", "StringEquals": "InProgress", "Next": "WaitRefresh"},
            ],
            "Default": "GroupFailed",
        },
        "GroupFailed": {"Type": "Fail", "Error": "RefreshFailed"},
        "GroupDone": {"Type": "Succeed"},
    }
    states = {
        "Validate": _lambda(
            "validate_request",
            {"executionId.$": "$$.Execution.Id", "executionName.$": "$$.Execution.Name", "input.$": "$"},
            "$.plan",
            "StartBuild",
        ),
        "StartBuild": _lambda(
            "start_image_build",
            {
                "executionId.$": "$$.Execution.Id",
                "request.$": "$.plan.result.request",
                "pipeline": "app",
                "baseAmiId": None,
            },
            "$.build",
            "WaitBuild",
        ),
        **_poll("WaitBuild", "DescribeBuild"),
        "DescribeBuild": _lambda(
            "check_image_build",
            {
                "executionId.$": "$$.Execution.Id",
                "build.$": "$.build.result",
                "request.$": "$.plan.result.request",
                "baseAmiId": None,
            },
            "$.image",
            "BuildDone",
        ),
        "BuildDone": {
            "Type": "Choice",
            "Choices": [
                {"Variable": "$.image.result.status", "StringEquals": "AVAILABLE", "Next": "FirstStage"},
                {"Variable": "$.image.result.status", "StringEquals": "BUILDING", "Next": "WaitBuild"},
            ],
            "Default": "BuildFailed",
        },
        "BuildFailed": {"Type": "Fail", "Error": "ImageBuildFailed"},
        "FirstStage": {
            "Type": "Pass",
            "Parameters": {"stage.$": "States.ArrayGetItem($.plan.result.stages, 0)"},
            "ResultPath": "$.first",
            "Next": "Groups",
        },
        "Groups": {
            "Type": "Map",
            "ItemsPath": "$.first.stage.targets",
            "MaxConcurrency": 1,
            "ItemSelector": {
                "target.$": "$$.Map.Item.Value",
                "executionId.$": "$$.Execution.Id",
                "amiId.$": "$.image.result.amiId",
                "commit.$": "$.plan.result.request.commit",
            },
            "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": "Publish", "States": target},
            "ResultPath": None,
            "Next": "Prune",
        },
        "Prune": _lambda(
            "prune_images",
            {"executionId.$": "$$.Execution.Id", "protectAmiIds.$": "States.Array($.image.result.amiId)"},
            "$.prune",
            "Notify",
        ),
        # The same notify step as ours (the state machine has no SNS permission of its own).
        "Notify": _lambda(
            "notify", {"event": "DeploymentSucceeded", "executionId.$": "$$.Execution.Id"}, "$.notify", "Done"
        ),
        "Done": {"Type": "Succeed"},
    }
    return json.dumps({"Comment": "Seed-style poll loop (benchmark baseline)", "StartAt": "Validate", "States": states})
