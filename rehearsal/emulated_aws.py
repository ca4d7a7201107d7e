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
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from botocore.awsrequest import AWSResponse

ACCOUNT = "123456789012"
REGION = "eu-west-1"
ACTIVE_REFRESH = {"Pending", "InProgress", "Cancelling", "RollbackInProgress", "Baking"}
BUILD_TERMINAL = {"AVAILABLE", "FAILED", "CANCELLED"}
REFRESH_EVENTS = {
    "Successful": "EC2 Auto Scaling Instance Refresh Succeeded",
    "Failed": "EC2 Auto Scaling Instance Refresh Failed",
    "Cancelled": "EC2 Auto Scaling Instance Refresh Cancelled",
    "RollbackSuccessful": "EC2 Auto Scaling Instance Refresh Rollback Succeeded",
    "RollbackFailed": "EC2 Auto Scaling Instance Refresh Rollback Failed",
}
# Calls the harness itself makes (start/poll the execution, read approvals) are not the workflow's.
THROTTLING_XML = (
    b"<Response><Errors><Error><Code>Throttling</Code><Message>Rate exceeded</Message></Error></Errors></Response>"
)
NOT_COUNTED = {"states", "sqs", "sts", "iam", "lambda"}


def _ok(parsed: dict[str, Any]) -> tuple[AWSResponse, dict[str, Any]]:
    parsed.setdefault("ResponseMetadata", {"HTTPStatusCode": 200, "RequestId": str(uuid.uuid4())})
    return AWSResponse(None, 200, {}, None), parsed


def _error(code: str, message: str, status: int = 400) -> tuple[AWSResponse, dict[str, Any]]:
    parsed = {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return AWSResponse(None, status, {}, None), parsed


class _Raw:
    """The raw body botocore reads from an HTTP response."""

    def __init__(self, content: bytes) -> None:
        self._content = content

    def stream(self, **_: Any) -> Any:
        yield self._content

    def read(self, *_: Any) -> bytes:
        return self._content


def _backends() -> tuple[Any, Any]:
    from moto.autoscaling.models import autoscaling_backends
    from moto.ec2.models import ec2_backends

    return ec2_backends[ACCOUNT][REGION], autoscaling_backends[ACCOUNT][REGION]


@dataclass
class Refresh:
    refresh_id: str
    group: str
    template_id: str
    version: str
    statuses: list[str]
    previous_version: str
    preferences: dict[str, Any]
    sim_start: float = 0.0
    sim_now: Callable[[], float] = lambda: 0.0
    status: str = "Pending"
    calls: int = 0
    applied: bool = False

    def describe(self) -> dict[str, Any]:
        percentage = {"Successful": 100, "Pending": 0}.get(self.status, min(90, 30 * self.calls))
        return {
            "InstanceRefreshId": self.refresh_id,
            "AutoScalingGroupName": self.group,
            "Status": self.status,
            "StatusReason": f"emulated: {self.status}",
            # Started as long ago as simulated time says, so elapsed-time bounds work in a rehearsal.
            "StartTime": datetime.now(UTC) - timedelta(seconds=max(0.0, self.sim_now() - self.sim_start)),
            "PercentageComplete": percentage,
            "InstancesToUpdate": 0 if self.status == "Successful" else 2,
            "Preferences": self.preferences,
            "DesiredConfiguration": {"LaunchTemplate": {"LaunchTemplateId": self.template_id, "Version": self.version}},
        }


@dataclass
class Build:
    arn: str
    pipeline: str
    statuses: list[str]
    calls: int = 0
    ami_id: str | None = None
    sim_start: float = 0.0


def _role(group_name: str) -> str | None:
    """The blue-green role tag of a group in moto (None for a group without one, or gone)."""
    _, asg = _backends()
    group = asg.autoscaling_groups.get(group_name)
    if group is None:
        return None
    return next((t["Value"] for t in group.tags if t["Key"] == "immutable-ami:role"), None)


class EmulatedAws:
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
        authorize: Callable[[str, str, dict[str, Any]], Any] = lambda service, operation, params: None,
    ) -> None:
        self.scenario = scenario
        self.application = application
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
        """`throttle: {"ec2.CreateLaunchTemplateVersion": 2}`: the first two such requests get HTTP 400 Throttling."""
        if not self.counting:
            return None
        body = request.body.decode() if isinstance(request.body, bytes) else str(request.body or "")
        for key, remaining in self._throttles.items():
            service, operation = key.split(".")
            if remaining > 0 and f"Action={operation}" in body and service in request.url:
                self._throttles[key] -= 1
                self.log(f"{key} throttled by AWS (scenario); the SDK retries")
                return AWSResponse(request.url, 400, {}, _Raw(THROTTLING_XML))
        return None

    # -- instance refresh --------------------------------------------------------------------

    def _active(self, group: str) -> Refresh | None:
        return next((r for r in self.refreshes.values() if r.group == group and r.status in ACTIVE_REFRESH), None)

    def _start_refresh(self, params: dict[str, Any]) -> Any:
        group_name = params["AutoScalingGroupName"]
        template = params["DesiredConfiguration"]["LaunchTemplate"]
        foreign = self.scenario.get("foreignRefresh", {}).get(group_name)
        if foreign and not any(r.group == group_name for r in self.refreshes.values()):
            # Somebody else's refresh (or ours, from a crashed earlier attempt) is already running.
            ours = foreign == "ours"
            version = template["Version"] if ours else "$Latest"
            self._new_refresh(group_name, template["LaunchTemplateId"], version, ["InProgress", "Successful"], {})
        if self._active(group_name):
            return _error("InstanceRefreshInProgress", f"An Instance Refresh is already in progress for {group_name}")
        _, asg = _backends()
        group = asg.autoscaling_groups[group_name]
        # The first refresh of a group plays `refresh`; a later one (the rollback's refresh back) `rollbackRefresh`.
        first = not any(r.group == group_name for r in self.refreshes.values())
        script = self.scenario.get("refresh" if first else "rollbackRefresh", {})
        statuses = list(script.get(group_name, ["InProgress", "Successful"]))
        refresh = self._new_refresh(
            group_name, template["LaunchTemplateId"], template["Version"], statuses, params.get("Preferences", {})
        )
        refresh.previous_version = str(group.launch_template_version)
        self.log(f"instance refresh {refresh.refresh_id} started on {group_name} → version {template['Version']}")
        return _ok({"InstanceRefreshId": refresh.refresh_id})

    def _new_refresh(
        self, group: str, template_id: str, version: str, statuses: list[str], prefs: dict[str, Any]
    ) -> Refresh:
        refresh_id = f"{next(self._ids):08d}-aaaa-bbbb-cccc-{uuid.uuid4().hex[:12]}"
        refresh = Refresh(refresh_id, group, template_id, version, statuses, "", prefs, self.sim_now(), self.sim_now)
        self.refreshes[refresh_id] = refresh
        return refresh

    def event(self, kind: str, resource_id: str, status: str) -> dict[str, Any]:
        """The EventBridge event AWS sends when the resource reaches `status` (AWS's documented shapes)."""
        base = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "account": ACCOUNT,
            "region": REGION,
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        if kind == "refresh":
            refresh = self.refreshes[resource_id]
            group_arn = (
                f"arn:aws:autoscaling:{REGION}:{ACCOUNT}:autoScalingGroup:uuid:autoScalingGroupName/{refresh.group}"
            )
            return {
                **base,
                "detail-type": REFRESH_EVENTS[status],
                "source": "aws.autoscaling",
                "resources": [group_arn],
                "detail": {"InstanceRefreshId": resource_id, "AutoScalingGroupName": refresh.group},
            }
        return {
            **base,
            "detail-type": "EC2 Image Builder Image State Change",
            "source": "aws.imagebuilder",
            "resources": [resource_id],
            "detail": {"previous-state": {"status": "TESTING"}, "state": {"status": status}},
        }

    def _advance(self, refresh: Refresh) -> None:
        if refresh.status not in ACTIVE_REFRESH:
            return
        refresh.calls += 1
        if self.timed:
            end = refresh.sim_start + float(self.scenario.get("refreshSeconds", 1200))
            if self.sim_now() < end:
                refresh.status = "InProgress"
                return
            refresh.status = refresh.statuses[-1] if refresh.statuses else "Successful"
            refresh.statuses = []
            self._observed(("refresh", refresh.refresh_id), end)
        else:
            refresh.status = refresh.statuses.pop(0) if refresh.statuses else refresh.status
        if refresh.status == "Successful" and not refresh.applied:
            self._replace_instances(refresh.group, refresh.version)
            refresh.applied = True
        if refresh.status == "RollbackSuccessful" and refresh.previous_version:
            self._replace_instances(refresh.group, refresh.previous_version)

    def _describe_refreshes(self, params: dict[str, Any]) -> Any:
        group = params["AutoScalingGroupName"]
        wanted = set(params.get("InstanceRefreshIds", []))
        found = [r for r in self.refreshes.values() if r.group == group and (not wanted or r.refresh_id in wanted)]
        for refresh in found:
            self._advance(refresh)
        return _ok({"InstanceRefreshes": [r.describe() for r in reversed(found)]})

    def _rollback_refresh(self, params: dict[str, Any]) -> Any:
        refresh = self._active(params["AutoScalingGroupName"])
        if refresh is None:
            return _error("ActiveInstanceRefreshNotFound", "No in progress or pending Instance Refresh found")
        refresh.status = "RollbackInProgress"
        refresh.statuses = ["RollbackSuccessful"]
        self.log(f"instance refresh {refresh.refresh_id} on {refresh.group}: rollback started")
        return _ok({"InstanceRefreshId": refresh.refresh_id})

    def _cancel_refresh(self, params: dict[str, Any]) -> Any:
        refresh = self._active(params["AutoScalingGroupName"])
        if refresh is None:
            return _error("ActiveInstanceRefreshNotFound", "No in progress or pending Instance Refresh found")
        refresh.status, refresh.statuses = "Cancelled", []
        self.log(f"instance refresh {refresh.refresh_id} on {refresh.group}: cancelled")
        return _ok({"InstanceRefreshId": refresh.refresh_id})

    def _replace_instances(self, group_name: str, version: str) -> None:
        _, asg = _backends()
        group = asg.autoscaling_groups[group_name]
        capacity = group.desired_capacity
        group.launch_template_version = version
        group.provided_launch_template_version = version
        group.set_desired_capacity(0)
        group.set_desired_capacity(capacity)
        self.log(f"{group_name}: {capacity} instance(s) replaced, now on version {version} ({group.image_id})")

    def _scaling_activities(self, params: dict[str, Any]) -> Any:
        """`failedLaunches: {"<group>": N}`: the group's launches fail (e.g. a broken AMI), as AWS reports them.
        `"@green"` stands for any green group (its name is made up by the deployment)."""
        group = params["AutoScalingGroupName"]
        failed = self.scenario.get("failedLaunches", {})
        count = int(failed.get(group, failed.get("@green", 0) if _role(group) == "green" else 0))
        if not count:
            return None  # moto answers with its own activities
        now = self.sim_datetime()
        activities = [
            {
                "ActivityId": str(uuid.uuid4()),
                "AutoScalingGroupName": group,
                "Description": "Launching a new EC2 instance.  Status Reason: emulated",
                "Cause": "At 2026-11-21 an instance was started in response to an instance refresh",
                "StartTime": now,
                "StatusCode": "Failed",
                "StatusMessage": "The image id '[ami-0]' does not exist. Launching EC2 instance failed.",
                "Progress": 100,
            }
            for _ in range(count)
        ]
        return _ok({"Activities": activities})

    def _observed(self, key: tuple[str, str], ended_at: float) -> None:
        """The workflow saw a finished build or refresh: how long after it finished (its lag)."""
        self.lags.setdefault(key, max(0.0, self.sim_now() - ended_at))

    def _remaining(self, sim_start: float, duration: float) -> float:
        """Simulated seconds until a resource started at `sim_start` and taking `duration` is done."""
        return max(0.0, sim_start + duration - self.sim_now())

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

    # -- Image Builder -----------------------------------------------------------------------

    def _start_build(self, params: dict[str, Any]) -> Any:
        pipeline_arn = params["imagePipelineArn"]
        token = params["clientToken"]
        if token in self._build_tokens:  # Image Builder is idempotent on the client token
            arn = self._build_tokens[token]
            return _ok({"requestId": token, "clientToken": token, "imageBuildVersionArn": arn})
        pipeline = "base" if pipeline_arn.endswith("-base") else "app"
        # An image's ARN is image/<recipe name>/<recipe version>/<build> (Image Builder User Guide, "Image
        # Builder resource ARNs"); the stack names each recipe like its pipeline.
        name = pipeline_arn.rsplit("/", 1)[-1]
        statuses = list(self.scenario.get("imageBuilder", {}).get(pipeline, ["BUILDING", "TESTING", "AVAILABLE"]))
        arn = f"arn:aws:imagebuilder:{REGION}:{ACCOUNT}:image/{name}/1.0.0/{len(self.builds) + 1}"
        self.builds[arn] = Build(arn, pipeline, statuses, sim_start=self.sim_now())
        self._build_tokens[token] = arn
        self.log(f"image build started: {pipeline} pipeline (build {len(self.builds)})")
        return _ok({"requestId": token, "clientToken": token, "imageBuildVersionArn": arn})

    def _get_image(self, params: dict[str, Any]) -> Any:
        build = self.builds.get(params["imageBuildVersionArn"])
        if build is None:
            return _error("ResourceNotFoundException", "image not found")
        build.calls += 1
        if self.timed:
            # Timed scenarios (benchmarks): BUILDING until its duration has passed in simulated time.
            done = self.sim_now() >= build.sim_start + float(self.scenario.get("buildSeconds", 1800))
            status = build.statuses[-1] if done else "BUILDING"
            if done:
                self._observed(("image", build.arn), build.sim_start + float(self.scenario.get("buildSeconds", 1800)))
        else:
            status = build.statuses.pop(0) if len(build.statuses) > 1 else build.statuses[0]
        image: dict[str, Any] = {
            "arn": build.arn,
            "name": f"{self.application}-{build.pipeline}",
            "state": {"status": status},
        }
        if status in {"FAILED", "CANCELLED"}:
            image["state"]["reason"] = f"emulated: build {status.lower()} (scenario)"
        if status == "AVAILABLE":
            if build.ami_id is None:
                build.ami_id = self._bake(build)
            image["outputResources"] = {"amis": [{"region": REGION, "image": build.ami_id, "name": "baked"}]}
        return _ok({"requestId": str(uuid.uuid4()), "image": image})

    def _list_packages(self, params: dict[str, Any]) -> Any:
        """Base builds install the packages of the world's base images, plus an update unless the
        scenario says the base did not change (`basePackages: "unchanged"`)."""
        arn = params["imageBuildVersionArn"]
        packages = [("kernel", "6.1.100-1"), ("openssl", "3.0.8-1")]
        if arn in self.builds and self.scenario.get("basePackages") != "unchanged":
            packages[1] = ("openssl", "3.0.8-2")
        return _ok({"imagePackageList": [{"packageName": n, "packageVersion": v} for n, v in packages]})

    def _bake(self, build: Build) -> str:
        ec2, _ = _backends()
        now = datetime.now(UTC)
        ami = ec2.create_image(
            self.builder_instance_id, f"{self.application}-{build.pipeline}-{now:%Y%m%d%H%M%S%f}", "baked", []
        )
        ami.creation_date = now.replace(tzinfo=None)
        ami.add_tag("immutable-ami:application", self.application)
        ami.add_tag("immutable-ami:pipeline", build.pipeline)
        self.log(f"image build AVAILABLE: {build.pipeline} AMI {ami.id} (snapshot {ami.ebs_snapshot.id})")
        return str(ami.id)

    # -- EC2 calls moto lacks or simplifies --------------------------------------------------

    def _delete_versions(self, params: dict[str, Any]) -> Any:
        ec2, _ = _backends()
        template_id = params["LaunchTemplateId"]
        template = ec2.launch_templates[template_id]
        gone = self.deleted_versions.setdefault(template_id, set())
        ok, failed = [], []
        for raw in params["Versions"]:
            number = int(raw)
            if number == template.default_version_number:
                failed.append(
                    {
                        "LaunchTemplateId": template_id,
                        "VersionNumber": number,
                        "ResponseError": {"Code": "launchTemplateVersionIsDefaultVersion", "Message": "default"},
                    }
                )
            elif number in gone or number > len(template.versions):
                failed.append(
                    {
                        "LaunchTemplateId": template_id,
                        "VersionNumber": number,
                        "ResponseError": {"Code": "launchTemplateVersionDoesNotExist", "Message": "gone"},
                    }
                )
            else:
                gone.add(number)
                ok.append({"LaunchTemplateId": template_id, "VersionNumber": number})
        if ok:
            self.log(f"{template_id}: deleted launch template versions {[v['VersionNumber'] for v in ok]}")
        return _ok(
            {"SuccessfullyDeletedLaunchTemplateVersions": ok, "UnsuccessfullyDeletedLaunchTemplateVersions": failed}
        )

    def _green_health(self, parsed: dict[str, Any], **_: Any) -> None:
        """`greenHealth: "unhealthy"`: a green group's instances fail the target group's health checks."""
        state = self.scenario.get("greenHealth")
        if not state:
            return
        _, asg = _backends()
        green = {
            i.instance.id
            for name, group in asg.autoscaling_groups.items()
            if _role(name) == "green"
            for i in group.instance_states
        }
        for item in parsed.get("TargetHealthDescriptions", []):
            if item["Target"]["Id"] in green:
                item["TargetHealth"] = {
                    "State": state,
                    "Reason": "Target.FailedHealthChecks",
                    "Description": "Health checks failed with these codes: [500]",
                }

    def _hide_deleted_versions(self, parsed: dict[str, Any], **_: Any) -> None:
        versions = parsed.get("LaunchTemplateVersions")
        if versions:
            parsed["LaunchTemplateVersions"] = [
                v for v in versions if v["VersionNumber"] not in self.deleted_versions.get(v["LaunchTemplateId"], set())
            ]

    def kept_versions(self) -> dict[str, list[tuple[int, str]]]:
        ec2, _ = _backends()
        return {
            tid: [(v.number, v.image_id) for v in t.versions if v.number not in self.deleted_versions.get(tid, set())]
            for tid, t in ec2.launch_templates.items()
        }

    def _image_references(self, params: dict[str, Any]) -> Any:
        ec2, _ = _backends()
        wanted = set(params["ImageIds"])
        refs = []
        for instance in ec2.all_instances():
            if instance.image_id in wanted and instance.state != "terminated":
                refs.append(
                    {
                        "ImageId": instance.image_id,
                        "ResourceType": "ec2:Instance",
                        "Arn": f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/{instance.id}",
                    }
                )
        for template_id, versions in self.kept_versions().items():
            for number, image_id in versions:
                if image_id in wanted:
                    refs.append(
                        {
                            "ImageId": image_id,
                            "ResourceType": "ec2:LaunchTemplate",
                            "Arn": f"arn:aws:ec2:{REGION}:{ACCOUNT}:launch-template/{template_id}:{number}",
                        }
                    )
        return _ok({"ImageReferences": refs})

    def _deregister_image(self, params: dict[str, Any]) -> Any:
        ec2, _ = _backends()
        image_id = params["ImageId"]
        ami = ec2.amis.get(image_id)
        if ami is None:
            return _error("InvalidAMIID.NotFound", f"The image id '[{image_id}]' does not exist")
        snapshot_ids = [
            m["Ebs"]["SnapshotId"]
            for m in getattr(ami, "block_device_mappings", [])
            if m.get("Ebs", {}).get("SnapshotId")
        ]
        if not snapshot_ids and getattr(ami, "ebs_snapshot", None):
            snapshot_ids = [ami.ebs_snapshot.id]
        ec2.deregister_image(image_id)
        results = []
        if params.get("DeleteAssociatedSnapshots"):
            for snapshot_id in snapshot_ids:
                shared = any(
                    getattr(other, "ebs_snapshot", None) and other.ebs_snapshot.id == snapshot_id
                    for other in ec2.amis.values()
                )
                if shared:
                    results.append({"SnapshotId": snapshot_id, "ReturnCode": "skipped"})  # as EC2 reports it
                    continue
                ec2.delete_snapshot(snapshot_id)
                self.snapshots_deleted.append(snapshot_id)
                results.append({"SnapshotId": snapshot_id, "ReturnCode": "success"})
        self.log(
            f"deregistered {image_id}"
            + (
                f", deleted snapshot(s) {[r['SnapshotId'] for r in results if r['ReturnCode'] == 'success']}"
                if results
                else ""
            )
        )
        return _ok({"Return": True, "DeleteSnapshotResults": results})
