"""What a rehearsal reports: the outcome, the counts, the final state of the fleet and the invariants."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rehearsal.timeline import Entry


@dataclass
class Result:
    scenario: str
    status: str
    error: str | None
    cause: str | None
    transitions: int
    history_events: int
    lambda_invocations: int
    api_calls: dict[str, int]
    launch_templates: dict[str, dict[str, Any]]
    images_kept: list[str]
    images_pruned: list[str]
    snapshots_deleted: list[str]
    lock: str
    notifications: list[dict[str, Any]]
    invariant_violations: list[str]
    simulated_seconds: float
    wall_seconds: float
    timeline: list[Entry] = field(default_factory=list)  # each iterates as (sim s, state, type, notes)
    invocations: dict[str, int] = field(default_factory=dict)
    builds: list[str] = field(default_factory=list)  # pipelines baked, in order
    world_images: dict[str, list[str]] = field(default_factory=dict)  # "app"/"base" → ids, oldest first
    other_locks: list[str] = field(default_factory=list)  # targets still locked by other executions
    lags: list[float] = field(default_factory=list)  # simulated seconds from a build/refresh ending to being seen
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)  # blue-green targets' groups at the end
    groups_deleted: list[str] = field(default_factory=list)  # blue-green groups that existed at the start
    access_denied: list[dict[str, str]] = field(default_factory=list)  # calls a role would deny: step, action, resource
    observed_actions: list[str] = field(default_factory=list)  # "<role logical id> <action>" allowed and called
    authorizations: list[Any] = field(default_factory=list)  # (role logical id, AuthorizationRequest) allowed, in order
    targets: list[dict[str, Any]] = field(default_factory=list)  # the configured targets, as rehearsed
    note: str | None = None  # e.g. rehearsed with the scenario's overlay
    refreshed_groups: list[str] = field(default_factory=list)  # groups an instance refresh ran on
    fleet: dict[str, str | None] = field(default_factory=dict)  # every group at the end → its launch template id
    expect: dict[str, Any] = field(default_factory=dict)
    bounds: list[dict[str, Any]] = field(default_factory=list)  # each bounded wait that ran (rehearsal/timing.py)
    lock_margins: dict[str, Any] = field(default_factory=dict)  # the least time left on a lock a step acted under
    limits: dict[str, Any] = field(default_factory=dict)  # history size and largest payload against the quotas
    config: dict[str, Any] = field(
        default_factory=dict
    )  # the deploy configuration rehearsed  # the scenario's expectations, roles resolved
    # every image build of the run (rehearsal.emulated_builds: bakes), in the order they started
    bakes: list[dict[str, Any]] = field(default_factory=list)
    # the executions the scenario started beside the first (`alsoStart`): how each ended
    also_started: list[dict[str, Any]] = field(default_factory=list)
    # every invariant checked (rehearsal.invariants' names) → how many violations of it were found
    invariants: dict[str, int] = field(default_factory=dict)

    def check(self, invariant: str, violations: list[str]) -> None:
        """Record that `invariant` was checked, and what violated it: the report lists the ones that held too."""
        self.invariants[invariant] = self.invariants.get(invariant, 0) + len(violations)
        self.invariant_violations.extend(violations)

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "status": self.status,
            "error": self.error,
            "cause": self.cause,
            "transitions": self.transitions,
            "historyEvents": self.history_events,
            "lambdaInvocations": self.lambda_invocations,
            "invocationsByStep": self.invocations,
            "apiCalls": self.api_calls,
            "launchTemplates": self.launch_templates,
            "imagesKept": self.images_kept,
            "imagesPruned": self.images_pruned,
            "snapshotsDeleted": self.snapshots_deleted,
            "lock": self.lock,
            "notifications": self.notifications,
            "invariantViolations": self.invariant_violations,
            "invariantsChecked": self.invariants,
            "simulatedSeconds": round(self.simulated_seconds, 1),
            "wallSeconds": round(self.wall_seconds, 2),
            "builds": self.builds,
            "bakes": self.bakes,
            **({"alsoStarted": self.also_started} if self.also_started else {}),
            **({"groups": self.groups, "groupsDeleted": self.groups_deleted} if self.groups else {}),
            "targets": self.targets,
            "accessDenied": self.access_denied,
            "bounds": self.bounds,
            "lockMargins": self.lock_margins,
            "limits": self.limits,
            **({"note": self.note} if self.note else {}),
        }
