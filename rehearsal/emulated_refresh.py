"""Instance refresh, which moto lacks, played from the scenario: each DescribeInstanceRefreshes returns the next
status of `refresh.<group>` (the last one repeats); on Successful the group moves to the new version and its
instances are replaced in moto; on RollbackSuccessful they are replaced back. Scaling activities report the
scenario's failed launches."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from rehearsal.emulation import ACCOUNT, REGION, EmulationState, _backends, _error, _ok, _role
from shared.statuses import ACTIVE_REFRESH_STATUSES

# Statuses: Amazon EC2 Auto Scaling API Reference, "InstanceRefresh" (Status); the non-final ones are active
# (ACTIVE_REFRESH_STATUSES, the set the functions use). StartInstanceRefresh on a group with one active fails with
# InstanceRefreshInProgress, Rollback/Cancel without one with ActiveInstanceRefreshNotFound (API Reference, each
# action's "Errors").
# Detail types: Amazon EC2 Auto Scaling User Guide, "Instance refresh events" (EventBridge).
REFRESH_EVENTS = {
    "Successful": "EC2 Auto Scaling Instance Refresh Succeeded",
    "Failed": "EC2 Auto Scaling Instance Refresh Failed",
    "Cancelled": "EC2 Auto Scaling Instance Refresh Cancelled",
    "RollbackSuccessful": "EC2 Auto Scaling Instance Refresh Rollback Succeeded",
    "RollbackFailed": "EC2 Auto Scaling Instance Refresh Rollback Failed",
}


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
    rollback_sim_start: float | None = None

    sim_datetime: Callable[[], datetime] = lambda: datetime.now(UTC)

    def _ago(self, sim_start: float) -> datetime:
        """When `sim_start` was on the simulated clock, the one the steps read through shared.clock."""
        return self.sim_datetime() - timedelta(seconds=max(0.0, self.sim_now() - sim_start))

    def describe(self) -> dict[str, Any]:
        percentage = {"Successful": 100, "Pending": 0}.get(self.status, min(90, 30 * self.calls))
        return {
            "InstanceRefreshId": self.refresh_id,
            "AutoScalingGroupName": self.group,
            "Status": self.status,
            "StatusReason": f"emulated: {self.status}",
            "StartTime": self._ago(self.sim_start),
            "PercentageComplete": percentage,
            "InstancesToUpdate": 0 if self.status == "Successful" else 2,
            "Preferences": self.preferences,
            "DesiredConfiguration": {"LaunchTemplate": {"LaunchTemplateId": self.template_id, "Version": self.version}},
            # Amazon EC2 Auto Scaling API Reference, "InstanceRefresh" and "RollbackDetails": a rolled-back refresh
            # keeps its StartTime and reports when the rollback started.
            **(
                {
                    "RollbackDetails": {
                        "RollbackReason": "emulated",
                        "RollbackStartTime": self._ago(self.rollback_sim_start),
                    }
                }
                if self.rollback_sim_start is not None
                else {}
            ),
        }


class RefreshEmulation(EmulationState):
    def _active(self, group: str) -> Refresh | None:
        return next(
            (r for r in self.refreshes.values() if r.group == group and r.status in ACTIVE_REFRESH_STATUSES), None
        )

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
        refresh.sim_datetime = self.sim_datetime
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
        if refresh.status not in ACTIVE_REFRESH_STATUSES:
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
        refresh.rollback_sim_start = self.sim_now()
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
