"""The in-memory stand-ins for the adapters (lambdas/shared/aws/*) the unit tests pass to the step logic, in one
place, with the helpers and constants they build on. Each plays the AWS rules its docstring names and records what
it was asked; moto and botocore's Stubber stand in where the AWS request itself matters.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared import tags
from shared.aws.autoscaling import Group, GroupInstance, Refresh, RollbackAttempt
from shared.aws.autoscaling import ScalingActivity as Activity
from shared.aws.elbv2 import TargetHealth
from shared.aws.images import ImageRecord
from shared.aws.launch_templates import (
    MAX_VERSIONS_PER_DELETE,
    DeleteOutcome,
    TemplateVersion,
    VersionDeleteFailure,
)
from shared.aws.lock_table import LockItem, LockTable, PutOutcome
from shared.aws.references import ApplicationGroup
from shared.aws.stepfunctions import StartedExecution, execution_arn
from shared.aws.task_tokens import TokenDelivery
from shared.config import DeployConfig
from shared.errors import AutoScalingGroupNotFound, LaunchTemplateNotFound, RefreshInProgress
from shared.notifications import event_of
from shared.statuses import ACTIVE_REFRESH_STATUSES
from tests.conftest import SAMPLE_DEPLOY_CONFIG

# The configured target the fakes default to: the sample configuration's first.
CONFIG = DeployConfig.model_validate(SAMPLE_DEPLOY_CONFIG)
TARGET = CONFIG.stages[0].targets[0]  # web-app-test / lt-0aaaaaaaaaaaaaaa1
GROUP = TARGET.auto_scaling_group_name
TEMPLATE = TARGET.launch_template_id
STARTED = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


# test_check_image_build.py


class FakePackages:
    def __init__(self, by_build: dict[str, frozenset[tuple[str, str]]]) -> None:
        self.by_build = by_build

    def list_packages(self, build_version_arn: str) -> frozenset[tuple[str, str]]:
        return self.by_build.get(build_version_arn, frozenset())


class FakeBakedImages:
    def __init__(self, records: list[ImageRecord]) -> None:
        self.records = records

    def list_application_images(self, application: str) -> list[ImageRecord]:
        return self.records


# test_check_refresh.py


class FakeLoadBalancing:
    def __init__(self, health: dict[str, dict[str, str]]) -> None:
        self.health = health  # target group arn -> instance id -> state
        self.calls: list[str] = []

    def target_health(self, target_group_arn: str) -> list[TargetHealth]:
        self.calls.append(target_group_arn)
        return [
            TargetHealth(
                target_id=i, port=80, state=state, reason="" if state == "healthy" else "Target.Timeout", description=""
            )
            for i, state in self.health[target_group_arn].items()
        ]


# test_finish_execution.py


class FakeHistory:
    def __init__(self, last: str | None) -> None:
        self.last = last

    def last_state(self, execution: str, events: int = 20) -> str | None:
        return self.last


class FakeLocks:
    def __init__(self, held: dict[str, str]) -> None:
        self.held = dict(held)

    def delete_if_held_by(self, target: str, holder: str) -> bool:
        if self.held.get(target) == holder:
            del self.held[target]
            return True
        return False


class FakeNotifier:
    """Keeps each publish's subject and its structured event as a machine reads it (shared.notifications)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.mails: list[str] = []

    def publish(self, subject: str, messages: Mapping[str, str], attributes: Mapping[str, str]) -> str:
        event = event_of(messages["default"])
        assert attributes == {"event": event["event"]}
        self.sent.append((subject, event))
        self.mails.append(messages["email"])
        return "m-1"


class FakeQueue:
    """The lock table's queue and the tokens that wake it, recorded (lambdas/lock wake_queued's calls)."""

    def __init__(self, entries: list[Any]) -> None:
        self.entries = {e.execution_id: e for e in entries}
        self.woken: list[str] = []

    @property
    def store(self) -> Any:
        return self

    @property
    def tokens(self) -> Any:
        return self

    def queued(self) -> list[Any]:
        return list(self.entries.values())

    def delete_queued(self, execution_id: str, task_token: str | None = None) -> bool:
        return self.entries.pop(execution_id, None) is not None

    def send_success(self, task_token: str, output: Any) -> Any:
        self.woken.append(task_token)
        return TokenDelivery(delivered=True)


# test_github_webhook_properties.py


@dataclass
class RecordingStarter:
    """StartExecution that records every call and always starts a new execution (ExecutionStarter)."""

    started: list[str] = field(default_factory=list)

    def start_execution(self, state_machine_arn: str, name: str, execution_input: str) -> StartedExecution:
        self.started.append(execution_input)
        return StartedExecution(
            execution_arn=execution_arn(state_machine_arn, name), start_date=datetime.now(UTC), already_existed=False
        )


# test_lock.py


class RecordingStore:
    """The real adapter, with every call recorded in order."""

    def __init__(self, table: LockTable) -> None:
        self.table = table
        self.calls: list[tuple[str, str]] = []

    def put_if_free(self, lock: LockItem) -> PutOutcome:
        self.calls.append(("put", lock.target))
        return self.table.put_if_free(lock)

    def get(self, target: str) -> LockItem | None:
        self.calls.append(("get", target))
        return self.table.get(target)

    def delete_if_held_by(self, target: str, holder: str) -> bool:
        self.calls.append(("delete", target))
        return self.table.delete_if_held_by(target, holder)

    def __getattr__(self, name: str) -> Any:  # the queue's calls go straight to the table
        return getattr(self.table, name)


# test_publish_launch_template_version.py


OLD_AMI = "ami-00000000000000001"


class FakeLaunchTemplates:
    """In-memory launch template with EC2's rules: sequential numbers, ClientToken idempotency,
    at most 200 versions per delete, the default cannot be deleted."""

    def __init__(self, versions: Sequence[int] = (1,), default: int | None = None, template_id: str = TEMPLATE) -> None:
        self.template_id = template_id
        self.versions: dict[int, TemplateVersion] = {
            n: TemplateVersion(number=n, image_id=OLD_AMI, description=f"v{n}", is_default=False) for n in versions
        }
        self.default = default if default is not None else max(versions)
        self.next_number = max(versions) + 1
        self.tokens: dict[str, int] = {}
        self.created: list[dict[str, Any]] = []
        self.delete_batches: list[list[int]] = []
        self.delete_failures: dict[int, tuple[str, str]] = {}
        self.default_changes: list[int] = []

    def _check(self, template_id: str) -> None:
        if template_id != self.template_id:
            raise LaunchTemplateNotFound(f"launch template {template_id}: InvalidLaunchTemplateId.NotFound")

    def _view(self, n: int) -> TemplateVersion:
        v = self.versions[n]
        return TemplateVersion(number=n, image_id=v.image_id, description=v.description, is_default=n == self.default)

    def list_versions(self, template_id: str) -> list[TemplateVersion]:
        self._check(template_id)
        return [self._view(n) for n in sorted(self.versions)]

    def default_version(self, template_id: str) -> TemplateVersion:
        self._check(template_id)
        return self._view(self.default)

    def create_version(
        self, template_id: str, *, source_version: int, image_id: str, description: str, client_token: str
    ) -> TemplateVersion:
        self._check(template_id)
        if client_token in self.tokens:
            return self._view(self.tokens[client_token])
        n = self.next_number
        self.next_number += 1
        self.versions[n] = TemplateVersion(number=n, image_id=image_id, description=description, is_default=False)
        self.tokens[client_token] = n
        self.created.append(
            {"source": source_version, "image": image_id, "description": description, "token": client_token}
        )
        return self._view(n)

    def set_default_version(self, template_id: str, version: int) -> None:
        self._check(template_id)
        if version not in self.versions:
            raise LaunchTemplateNotFound(f"launch template {template_id}: InvalidLaunchTemplateId.VersionNotFound")
        self.default = version
        self.default_changes.append(version)

    def delete_versions(self, template_id: str, versions: Sequence[int]) -> DeleteOutcome:
        self._check(template_id)
        assert len(versions) <= MAX_VERSIONS_PER_DELETE, "DeleteLaunchTemplateVersions takes at most 200 versions"
        self.delete_batches.append(list(versions))
        deleted: list[int] = []
        failures: list[VersionDeleteFailure] = []
        for n in versions:
            if n in self.delete_failures:
                code, message = self.delete_failures[n]
                failures.append(VersionDeleteFailure(version=n, code=code, message=message))
            elif n not in self.versions:
                failures.append(VersionDeleteFailure(n, "launchTemplateVersionDoesNotExist", "no such version"))
            elif n == self.default:
                failures.append(VersionDeleteFailure(n, "unexpectedError", "cannot delete the default version"))
            else:
                del self.versions[n]
                deleted.append(n)
        return DeleteOutcome(deleted=tuple(deleted), failures=tuple(failures))


class FakeGroups:
    """The application's groups as FleetReferences.application_groups lists them: every tagged group, then the
    untagged ones among the configured names it is given."""

    def __init__(self, tagged: Sequence[ApplicationGroup] = (), untagged: Sequence[ApplicationGroup] = ()) -> None:
        self.tagged = list(tagged)
        self.untagged = list(untagged)
        self.asked: list[tuple[str, list[str]]] = []

    def application_groups(self, application: str, names: Sequence[str] = ()) -> list[ApplicationGroup]:
        self.asked.append((application, list(names)))
        return [*self.tagged, *(g for g in self.untagged if g.name in names)]


class FakeOwnImages:
    """The account's own AMIs as DescribeImages reports them (an AMI not listed is not ours, or gone)."""

    def __init__(self, commits: dict[str, str | None]) -> None:
        self.records = {
            image_id: ImageRecord(
                image_id=image_id,
                state="available",
                creation_date="2026-11-01T03:00:00.000Z",
                tags={tags.COMMIT: commit} if commit else {},
            )
            for image_id, commit in commits.items()
        }

    def get_own_image(self, image_id: str) -> ImageRecord | None:
        return self.records.get(image_id)


# test_start_instance_refresh.py (and test_publish_launch_template_version.py)


def make_group(instances: Sequence[GroupInstance] = (), target_groups: Sequence[str] = (), version: str = "1") -> Group:
    return Group(
        name=GROUP,
        target_group_arns=tuple(target_groups),
        instances=tuple(instances),
        launch_template_id=TEMPLATE,
        launch_template_version=version,
    )


def make_refresh(
    refresh_id: str,
    status: str,
    version: str | None = "2",
    *,
    template: str | None = TEMPLATE,
    percentage: int = 0,
    reason: str = "",
) -> Refresh:
    return Refresh(
        refresh_id=refresh_id,
        status=status,
        status_reason=reason,
        percentage_complete=percentage,
        instances_to_update=None,
        start_time=STARTED,
        launch_template_id=template,
        launch_template_name=None,
        launch_template_version=version,
    )


class FakeAutoScaling:
    """In-memory Auto Scaling with AWS's refresh rules: one active refresh per group, rollback/cancel states."""

    def __init__(
        self,
        group: Group | None = None,
        refreshes: Sequence[Refresh] = (),
        activities: Sequence[Activity] = (),
        *,
        irreversible: bool = False,
    ) -> None:
        self.group = group or make_group()
        self.refreshes = list(refreshes)  # newest first, like DescribeInstanceRefreshes
        self.activities = list(activities)
        self.irreversible = irreversible
        self.started: list[dict[str, Any]] = []
        self.calls: list[str] = []
        self.before_start: list[Refresh] = []  # refreshes that "appear" just before StartInstanceRefresh

    def describe_group(self, name: str) -> Group:
        self.calls.append("DescribeAutoScalingGroups")
        if name != self.group.name:
            raise AutoScalingGroupNotFound(name)
        return self.group

    def describe_refreshes(self, group_name: str, refresh_ids: Sequence[str] = ()) -> list[Refresh]:
        self.calls.append("DescribeInstanceRefreshes")
        return [r for r in self.refreshes if not refresh_ids or r.refresh_id in refresh_ids]

    def _active(self) -> Refresh | None:
        return next((r for r in self.refreshes if r.status in ACTIVE_REFRESH_STATUSES), None)

    def _set_status(self, refresh_id: str, status: str) -> None:
        self.refreshes = [
            dataclasses.replace(r, status=status) if r.refresh_id == refresh_id else r for r in self.refreshes
        ]

    def start_refresh(self, group_name: str, *, template_id: str, version: int, preferences: dict[str, Any]) -> str:
        self.calls.append("StartInstanceRefresh")
        self.refreshes[:0], self.before_start = self.before_start, []
        if self._active() is not None:
            raise RefreshInProgress(f"{group_name}: An Instance Refresh is already in progress")
        refresh_id = f"refresh-{len(self.refreshes) + 1}"
        self.refreshes.insert(0, make_refresh(refresh_id, "Pending", str(version), template=template_id))
        self.started.append({"template_id": template_id, "version": version, "preferences": preferences})
        return refresh_id

    def rollback_refresh(self, group_name: str) -> RollbackAttempt:
        self.calls.append("RollbackInstanceRefresh")
        active = self._active()
        if active is None or active.status == "RollbackInProgress":
            return RollbackAttempt(outcome="not_active", refresh_id=None, message="No active refresh")
        if self.irreversible:
            return RollbackAttempt(outcome="irreversible", refresh_id=None, message="The refresh is irreversible")
        self._set_status(active.refresh_id, "RollbackInProgress")
        return RollbackAttempt(outcome="started", refresh_id=active.refresh_id, message="")

    def cancel_refresh(self, group_name: str) -> str | None:
        self.calls.append("CancelInstanceRefresh")
        active = self._active()
        if active is None:
            return None
        self._set_status(active.refresh_id, "Cancelling")
        return active.refresh_id

    def scaling_activities(self, group_name: str, since: datetime) -> list[Activity]:
        self.calls.append("DescribeScalingActivities")
        return [a for a in self.activities if a.start_time >= since]
