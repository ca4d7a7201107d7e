"""What moto lacks, played from the scenario: Image Builder, instance refresh, and three EC2 calls.

The handlers' real adapters make real boto3 calls; botocore validates each request against the
service model, then a `before-call` hook answers the calls moto does not implement (as botocore's
own Stubber does) and everything else reaches moto. The same hook counts every AWS API call by
operation.

Scripted per scenario:
- Image Builder: each GetImage of a build returns the next status of `imageBuilder.<pipeline>`; on
  AVAILABLE a real AMI (with its snapshot) appears in moto.
- Instance refresh: each DescribeInstanceRefreshes returns the next status of `refresh.<group>`
  (the last one repeats); on Successful the group moves to the new version and its instances are
  replaced in moto; on RollbackSuccessful they are replaced back.
- EC2: DeleteLaunchTemplateVersions (hidden from later describes), DescribeImageReferences
  (computed from moto's instances and launch template versions), DeregisterImage with
  DeleteAssociatedSnapshots (moto ignores the flag: the snapshots are deleted here, shared ones kept).
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.awsrequest import AWSResponse

from rehearsal.emulated_builds import BUILD_TERMINAL, Build, ImageBuilderEmulation
from rehearsal.emulated_ec2 import Ec2Emulation
from rehearsal.emulated_refresh import ACTIVE_REFRESH, Refresh, RefreshEmulation
from rehearsal.emulation import ACCOUNT, REGION, _backends, _error, _ok, _Raw

__all__ = ["ACCOUNT", "REGION", "EmulatedAws", "_backends", "_error", "_ok"]

# Calls the harness itself makes (start/poll the execution, read approvals) are not the workflow's.
# The code a throttled request answers, per service: EC2 "RequestLimitExceeded" (Amazon EC2 Developer Guide,
# "Request throttling for the Amazon EC2 API"); Auto Scaling and the other query APIs "Throttling" (their API
# References' "Common Errors").
THROTTLING_CODES = {"ec2": "RequestLimitExceeded"}


def _throttled_body(service: str) -> bytes:
    code = THROTTLING_CODES.get(service, "Throttling")
    error = f"<Error><Code>{code}</Code><Message>Rate exceeded</Message></Error>"
    return f"<Response><Errors>{error}</Errors></Response>".encode()


NOT_COUNTED = {"states", "sqs", "sts", "iam", "lambda"}


class EmulatedAws(RefreshEmulation, ImageBuilderEmulation, Ec2Emulation):
    """Installs the hooks on boto3's default session; `log` receives a line per change it makes."""

    def __init__(
        self,
        scenario: dict[str, Any],
        builder_instance_id: str,
        log: Callable[[str], None],
        sim_now: Callable[[], float] = lambda: 0.0,
        touch: Callable[[], None] = lambda: None,
        sim_datetime: Callable[[], datetime] = lambda: datetime.now(UTC),
        application: str = "web-app",
        pipelines: dict[str, tuple[str, str]] | None = None,
        authorize: Callable[[str, str, dict[str, Any]], Any] = lambda service, operation, params: None,
    ) -> None:
        self.scenario = scenario
        self.application = application
        self.pipelines = dict(pipelines or {})
        self.authorize = authorize  # the IAM contract: None when the caller's role allows the call, else the denial
        self.sim_now = sim_now
        self.sim_datetime = sim_datetime  # "now" on the simulated clock, as the blue-green steps see it
        self.touch = touch
        self.builder_instance_id = builder_instance_id
        self.log = log
        self.api_calls: Counter[str] = Counter()
        self.counting = False
        self.refreshes: dict[str, Refresh] = {}
        self.builds: dict[str, Build] = {}
        self.timed = bool(scenario.get("timed"))
        self.lags: dict[tuple[str, str], float] = {}  # (kind, id) → simulated seconds from its end to being seen
        self._build_tokens: dict[str, str] = {}
        self.deleted_versions: dict[str, set[int]] = {}
        self.snapshots_deleted: list[str] = []
        self._throttles = {k: int(v) for k, v in scenario.get("throttle", {}).items()}
        self._ids = itertools.count(1)
        self._handlers: dict[str, Callable[..., Any]] = {
            "autoscaling.StartInstanceRefresh": self._start_refresh,
            "autoscaling.DescribeInstanceRefreshes": self._describe_refreshes,
            "autoscaling.RollbackInstanceRefresh": self._rollback_refresh,
            "autoscaling.CancelInstanceRefresh": self._cancel_refresh,
            "imagebuilder.StartImagePipelineExecution": self._start_build,
            "imagebuilder.GetImage": self._get_image,
            "imagebuilder.ListImagePackages": self._list_packages,
            "ec2.DeleteLaunchTemplateVersions": self._delete_versions,
            "ec2.DescribeImageReferences": self._image_references,
            "ec2.DeregisterImage": self._deregister_image,
            "autoscaling.DescribeScalingActivities": self._scaling_activities,
        }

    # -- wiring ------------------------------------------------------------------------------

    def install(self) -> None:
        events = boto3._get_default_session().events
        events.register("before-parameter-build", self._keep_params, unique_id="rehearsal-params")
        # First in line, before moto answers: a throttled request reaches botocore's own retry logic.
        events.register_first("before-send", self._throttle, unique_id="rehearsal-throttle")
        events.register("before-call", self._before_call, unique_id="rehearsal-emulated-aws")
        events.register(
            "after-call.ec2.DescribeLaunchTemplateVersions", self._hide_deleted_versions, unique_id="rehearsal-lt"
        )
        events.register(
            "after-call.elastic-load-balancing-v2.DescribeTargetHealth",
            self._green_health,
            unique_id="rehearsal-health",
        )

    def uninstall(self) -> None:
        events = boto3._get_default_session().events
        events.unregister("before-parameter-build", unique_id="rehearsal-params")
        events.unregister("before-send", unique_id="rehearsal-throttle")
        events.unregister("before-call", unique_id="rehearsal-emulated-aws")
        events.unregister("after-call.ec2.DescribeLaunchTemplateVersions", unique_id="rehearsal-lt")
        events.unregister("after-call.elastic-load-balancing-v2.DescribeTargetHealth", unique_id="rehearsal-health")

    @staticmethod
    def _keep_params(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        """`before-call` sees the serialized request; keep the caller's parameters for the handlers."""
        context["rehearsal_params"] = dict(params)

    def _before_call(self, model: Any, context: dict[str, Any], **_: Any) -> Any:
        params = context.get("rehearsal_params", {})
        service = model.service_model.endpoint_prefix
        key = f"{service}.{model.name}"
        if self.counting and service not in NOT_COUNTED:
            self.touch()  # the workflow is doing something (the harness's own polling does not count)
            self.api_calls[key] += 1
        denied = self.authorize(service, model.name, params)
        if denied is not None:
            return denied
        handler = self._handlers.get(key)
        return handler(params) if handler else None

    def _throttle(self, request: Any, **_: Any) -> Any:
        """`throttle: {"ec2.CreateLaunchTemplateVersion": 2}`: the first two such requests are throttled (HTTP 400)."""
        if not self.counting:
            return None
        body = request.body.decode() if isinstance(request.body, bytes) else str(request.body or "")
        for key, remaining in self._throttles.items():
            service, operation = key.split(".")
            if remaining > 0 and f"Action={operation}" in body and service in request.url:
                self._throttles[key] -= 1
                self.log(f"{key} throttled by AWS (scenario); the SDK retries")
                return AWSResponse(request.url, 400, {}, _Raw(_throttled_body(service)))
        return None

    def finish(self, kind: str, resource_id: str) -> tuple[str | None, float]:
        """Let the resource run to its end as time passes: (its terminal status or None if it never ends, seconds)."""
        if kind == "refresh":
            refresh = self.refreshes.get(resource_id)
            if refresh is None:
                return None, 0.0
            seconds = self._remaining(refresh.sim_start, float(self.scenario.get("refreshSeconds", 1200)))
            if self.timed:
                return (refresh.statuses[-1] if refresh.statuses else "Successful"), seconds
            while refresh.status in ACTIVE_REFRESH and refresh.statuses:
                self._advance(refresh)
            return (None if refresh.status in ACTIVE_REFRESH else refresh.status), seconds
        build = self.builds.get(resource_id)
        if build is None:
            return None, 0.0
        seconds = self._remaining(build.sim_start, float(self.scenario.get("buildSeconds", 1800)))
        if self.timed:
            return build.statuses[-1], seconds  # GetImage reports it once the time has passed
        while build.statuses and build.statuses[0] not in BUILD_TERMINAL and len(build.statuses) > 1:
            build.statuses.pop(0)
        status = build.statuses[0] if build.statuses else None
        if status not in BUILD_TERMINAL:
            return None, seconds
        if status == "AVAILABLE" and build.ami_id is None:
            build.ami_id = self._bake(build)
        return status, seconds
