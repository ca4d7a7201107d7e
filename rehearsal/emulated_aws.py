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
import random
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.awsrequest import AWSResponse

from rehearsal.emulated_builds import BUILD_TERMINAL, Build, ImageBuilderEmulation
from rehearsal.emulated_codecommit import CodeCommitEmulation
from rehearsal.emulated_ec2 import Ec2Emulation
from rehearsal.emulated_refresh import Refresh, RefreshEmulation
from rehearsal.emulation import ACCOUNT, REGION, _backends, _error, _ok, _Raw
from rehearsal.rate_limits import RateLimits, request_of, retry_sleeps_on
from shared.statuses import ACTIVE_REFRESH_STATUSES

__all__ = ["ACCOUNT", "REGION", "EmulatedAws", "_backends", "_error", "_ok"]

# Calls the harness itself makes (start/poll the execution, read approvals) are not the workflow's.
# The code a throttled request answers, per service: EC2 "RequestLimitExceeded" (Amazon EC2 Developer Guide,
# "Request throttling for the Amazon EC2 API"); Auto Scaling and the other query APIs "Throttling" (their API
# References' "Common Errors"). The rates themselves: rehearsal/rate_limits.py.
THROTTLING_CODES = {"ec2": "RequestLimitExceeded", "autoscaling": "Throttling"}


def _throttled_body(service: str) -> bytes:
    code = THROTTLING_CODES.get(service, "Throttling")
    error = f"<Error><Code>{code}</Code><Message>Rate exceeded</Message></Error>"
    return f"<Response><Errors>{error}</Errors></Response>".encode()


NOT_COUNTED = {"states", "sqs", "sts", "iam", "lambda"}


class EmulatedAws(RefreshEmulation, ImageBuilderEmulation, Ec2Emulation, CodeCommitEmulation):
    """Installs the hooks on boto3's default session; `log` receives a line per change it makes.

    EC2 and Auto Scaling calls of the workflow are rate limited (rehearsal/rate_limits.py) on `sim_now`. Waiting
    for a token costs simulated time only: botocore's retry backoff calls `sim_sleep` when it is set before
    `install()` (the rehearsal's clock advance), else it is kept as an offset of the rate limits' own clock.
    """

    sim_sleep: Callable[[float], None] | None = None

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
        image_builder: dict[str, Any] | None = None,
        authorize: Callable[[str, str, dict[str, Any]], Any] = lambda service, operation, params: None,
    ) -> None:
        self.scenario = scenario
        self.application = application
        self.pipelines = dict(pipelines or {})
        self.image_builder = dict(
            image_builder or {"components": set(), "infrastructures": set(), "distributions": set()}
        )
        self.recipes: dict[str, dict[str, Any]] = {}
        self._recipe_tokens: dict[str, str] = {}
        self.baked_commits: dict[str, str | None] = {}  # AMI id → the commit its build checked out
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
            "imagebuilder.CreateImageRecipe": self._create_recipe,
            "imagebuilder.CreateImage": self._create_image,
            "imagebuilder.CancelImageCreation": self._cancel_build,
            "imagebuilder.ListImagePackages": self._list_packages,
            "ec2.DeleteLaunchTemplateVersions": self._delete_versions,
            "ec2.DescribeImageReferences": self._image_references,
            "ec2.DeregisterImage": self._deregister_image,
            "autoscaling.DescribeScalingActivities": self._scaling_activities,
            "codecommit.GetCommit": self._get_commit,
        }

    # -- wiring ------------------------------------------------------------------------------

    def install(self) -> None:
        events = boto3._get_default_session().events
        events.register("before-parameter-build", self._keep_params, unique_id="rehearsal-params")
        self._slept = 0.0
        self.rate_limits = RateLimits(self._limits_now)
        self._backoff_random = random.Random(0)  # noqa: S311 - the retries' jitter, not a secret: the same run twice
        self._retry_sleep = retry_sleeps_on(self._sleep)
        self._retry_sleep.__enter__()
        # First in line, before moto answers: a throttled request reaches botocore's own retry logic.
        events.register_first("before-send", self._throttle, unique_id="rehearsal-throttle")
        # Calls the emulation answers in before-call never reach botocore's retry loop: limited here instead.
        events.register_first("before-call", self._throttle_answered, unique_id="rehearsal-rate-limits")
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
        events.unregister("before-call", unique_id="rehearsal-rate-limits")
        retry_sleep = self.__dict__.pop("_retry_sleep", None)
        if retry_sleep is not None:
            retry_sleep.__exit__(None, None, None)
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
        """Each attempt botocore sends: the scenario's scripted throttles, then the API's token bucket.

        `throttle: {"ec2.CreateLaunchTemplateVersion": 2}`: the first two such requests are throttled (HTTP 400),
        whether moto or the emulation answers the call.
        A request the bucket refuses answers the service's throttling code; botocore retries it with its
        backoff (on simulated time) and raises the code once its configured attempts are spent."""
        if not self.counting:
            return None
        found = request_of(request)
        if found is None:
            return None
        service, operation, params = found
        if f"{service}.{operation}" in self._handlers:
            return None  # the emulation's own calls were limited in before-call
        if self._scripted_throttle(service, operation):
            return AWSResponse(request.url, 400, {}, _Raw(_throttled_body(service)))
        if self.rate_limits.admit(service, operation, params):
            return None
        self._log_throttle(service, operation)
        return AWSResponse(request.url, 400, {}, _Raw(_throttled_body(service)))

    def _throttle_answered(self, model: Any, params: dict[str, Any], context: dict[str, Any], **_: Any) -> Any:
        """The rate limit of a call the emulation answers in before-call, which botocore's retry loop never sees.

        The same retries botocore would make: up to the client's configured total attempts, each wait computed
        by botocore's own standard-mode backoff for a throttling error, slept on simulated time; then the
        throttling error."""
        if not self.counting:
            return None
        service = model.service_model.endpoint_prefix
        if f"{service}.{model.name}" not in self._handlers:
            return None
        body = params.get("body")
        query = {str(k): str(v) for k, v in body.items()} if isinstance(body, dict) else {}
        retries = getattr(context.get("client_config"), "retries", None) or {}
        attempts = int(retries.get("total_max_attempts") or 3)
        for attempt in range(1, attempts + 1):
            if not self._scripted_throttle(service, model.name):
                if self.rate_limits.admit(service, model.name, query):
                    return None
                self._log_throttle(service, model.name)
            if attempt < attempts:
                self._sleep(self._backoff(model, service, attempt))
        return _error(THROTTLING_CODES.get(service, "Throttling"), "Rate exceeded")

    def _scripted_throttle(self, service: str, operation: str) -> bool:
        """One of the scenario's scripted throttles (`throttle: {"ec2.DeleteLaunchTemplateVersions": 3}`), taken."""
        key = f"{service}.{operation}"
        if self._throttles.get(key, 0) <= 0:
            return False
        self._throttles[key] -= 1
        self.log(f"{key} throttled by AWS (scenario); the SDK retries")
        return True

    def _backoff(self, model: Any, service: str, attempt: int) -> float:
        from botocore.retries.standard import (
            ExponentialBackoff,
            RetryContext,
            RetryEventAdapter,
            ThrottlingErrorDetector,
        )

        backoff = ExponentialBackoff(
            service_name=service,
            throttling_detector=ThrottlingErrorDetector(RetryEventAdapter()),
            random=self._backoff_random.random,
        )
        error = {"Error": {"Code": THROTTLING_CODES.get(service, "Throttling"), "Message": "Rate exceeded"}}
        context = RetryContext(
            attempt_number=attempt,
            operation_model=model,
            parsed_response=error,
            http_response=AWSResponse(None, 400, {}, None),
        )
        return float(backoff.delay_amount(context))

    def _log_throttle(self, service: str, operation: str) -> None:
        key = f"{service}.{operation}"
        if self.rate_limits.throttled[key] <= 3:  # the first few; the count is in rate_limits.throttled
            self.log(f"{key} throttled: {THROTTLING_CODES.get(service, 'Throttling')} (API rate limit)")

    def _limits_now(self) -> float:
        return self.sim_now() + (0.0 if self.sim_sleep is not None else self._slept)

    def _sleep(self, seconds: float) -> None:
        if self.sim_sleep is not None:
            self.sim_sleep(seconds)
        else:
            self._slept += max(0.0, seconds)

    def finish(self, kind: str, resource_id: str) -> tuple[str | None, float]:
        """Let the resource run to its end as time passes: (its terminal status or None if it never ends, seconds)."""
        if kind == "refresh":
            refresh = self.refreshes.get(resource_id)
            if refresh is None:
                return None, 0.0
            seconds = self._remaining(refresh.sim_start, float(self.scenario.get("refreshSeconds", 1200)))
            if self.timed:
                return (refresh.statuses[-1] if refresh.statuses else "Successful"), seconds
            while refresh.status in ACTIVE_REFRESH_STATUSES and refresh.statuses:
                self._advance(refresh)
            return (None if refresh.status in ACTIVE_REFRESH_STATUSES else refresh.status), seconds
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
