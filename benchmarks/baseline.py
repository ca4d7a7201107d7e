"""The shell-script baseline, for the side-by-side benchmark: the Packer + AWS CLI shell-script pipeline users
run today (README, "Performance"), which polls every 15 s and makes one CLI call per delete.

- `baseline_asl()`: its orchestration, as a state machine. Bake, then for each group create the launch template
  version, start the refresh and poll it every 15 s (Wait → describe → Choice) until it is done; the image build
  is polled the same way. It calls the same step functions as ours (so only the orchestration differs) and uses
  the same `${...}` placeholders, so the rehearsal runs it unchanged.
- `baseline_prune()`: its prune loop, call for call, each call an AWS CLI command with the CLI's retries.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

from rehearsal.rate_limits import SimulatedSeconds
from stacks.steps import BY_FOLDER

POLL_SECONDS = 15
# The page size the Images adapter asks DescribeImages for; the baseline asks for the same.
DESCRIBE_IMAGES_PAGE_SIZE = 1000
# The AWS CLI's standard retry mode (the default): 3 attempts in all (AWS CLI User Guide, "AWS CLI retries").
CLI_MAX_ATTEMPTS = 3


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
    return json.dumps(
        {"Comment": "The shell-script baseline's poll loop (benchmark)", "StartAt": "Validate", "States": states}
    )


def baseline_prune(
    ec2: Any, application: str, keep: int, clock: SimulatedSeconds | None = None
) -> tuple[int, int, int]:
    """The shell-script baseline's prune, call for call, each call an AWS CLI command with the CLI's retries
    (`ec2` makes one attempt per call; `clock` is where the backoff waits). Returns (images deregistered,
    snapshots deleted, commands that failed)."""
    from botocore.exceptions import ClientError

    retry = _CliRetry(clock or SimulatedSeconds())

    def describe() -> list[dict[str, Any]]:
        pages = ec2.get_paginator("describe_images").paginate(
            Owners=["self"],
            Filters=[{"Name": "tag:immutable-ami:application", "Values": [application]}],
            PaginationConfig={"PageSize": DESCRIBE_IMAGES_PAGE_SIZE},
        )
        return [i for page in pages for i in page.get("Images", [])]

    found = sorted(retry(describe), key=lambda i: i["CreationDate"], reverse=True)
    pruned = snapshots = failed = 0
    for image in found[keep:]:
        try:
            retry(functools.partial(ec2.deregister_image, ImageId=image["ImageId"]))
            pruned += 1
        except ClientError:
            failed += 1
        for mapping in image.get("BlockDeviceMappings", []):
            snapshot_id = mapping.get("Ebs", {}).get("SnapshotId")
            if snapshot_id:
                try:
                    retry(functools.partial(ec2.delete_snapshot, SnapshotId=snapshot_id))
                    snapshots += 1
                except ClientError:
                    failed += 1
    return pruned, snapshots, failed


class _CliRetry:
    """One AWS CLI command's attempts: retried on a throttling error, at most CLI_MAX_ATTEMPTS in all, each wait
    computed by botocore's standard-mode backoff (what the CLI runs: base 2, full jitter, capped at 20 s)."""

    THROTTLING = frozenset({"RequestLimitExceeded", "Throttling", "ThrottlingException"})

    def __init__(self, clock: SimulatedSeconds) -> None:
        import random

        from botocore.retries.standard import ExponentialBackoff, RetryEventAdapter, ThrottlingErrorDetector

        self._clock = clock
        self._backoff = ExponentialBackoff(
            throttling_detector=ThrottlingErrorDetector(RetryEventAdapter()),
            random=random.Random(1).random,  # noqa: S311 - jitter, not a secret: the same run twice
        )

    def __call__(self, command: Callable[[], Any]) -> Any:
        from botocore.awsrequest import AWSResponse
        from botocore.exceptions import ClientError
        from botocore.retries.standard import RetryContext

        for attempt in range(1, CLI_MAX_ATTEMPTS + 1):
            try:
                return command()
            except ClientError as exc:
                if exc.response["Error"]["Code"] not in self.THROTTLING or attempt == CLI_MAX_ATTEMPTS:
                    raise
                context = RetryContext(
                    attempt_number=attempt,
                    parsed_response=exc.response,
                    http_response=AWSResponse(None, 400, {}, None),
                )
                self._clock.sleep(self._backoff.delay_amount(context))
        raise AssertionError("unreachable")
