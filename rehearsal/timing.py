"""Time, checked: how long each bounded wait really ran, and how close each locked target came to its lock's expiry.

Every Lambda invocation of the workflow is recorded with its simulated start and end, its payload and its answer.
From that record, after the run:
- `bounds`: one entry per bounded wait that ran, `{"wait", "target", "boundSeconds", "pollSeconds",
  "elapsedSeconds"}`. The bounds and poll intervals are the synthesized template's (DefinitionSubstitutions, and
  the blue-green settings of the functions' DEPLOY_CONFIG); a wait holds its bound when it ended within one poll
  interval after it.
- `lockMargins`: at the end of every step that acts on a locked target (its payload names the target and it is
  not a dry run), the lock item's expiresAt minus the simulated now, read from the lock table the step's
  execution wrote. It must stay positive: a lock that expires while its execution still acts on the group lets a
  second deployment take the group.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from shared.config import DeployConfig
from stacks.bounds import MAX_DEREGISTRATION_DELAY_SECONDS

# A wait's elapsed time includes the real time the rehearsal's own steps take around it (well under a second).
STEP_SLACK_SECONDS = 1.0


@dataclass(frozen=True)
class Call:
    step: str
    payload: dict[str, Any]
    output: dict[str, Any] | None  # None when the function failed
    started: float  # simulated seconds
    ended: float


@dataclass
class Margin:
    seconds: float
    step: str
    target: str


@dataclass
class Recorder:
    """Wraps the state machine's Lambda invoke: records each call and samples the lock of the target it acts on."""

    step_of: Callable[[str], str]
    sim_now: Callable[[], float]
    sim_epoch: Callable[[], float]
    lock_of: Callable[[str], dict[str, Any] | None]  # group → the lock item ({"holder", "expiresAt"}) or None
    calls: list[Call] = field(default_factory=list)
    margins: list[Margin] = field(default_factory=list)

    def wrap(self, invoke: Callable[[str, Any], dict[str, Any]]) -> Callable[[str, Any], dict[str, Any]]:
        def recorded(function: str, payload: Any) -> dict[str, Any]:
            event = json.loads(payload) if isinstance(payload, bytes | str) else dict(payload or {})
            started = self.sim_now()
            response = invoke(function, payload)
            step = self.step_of(function)
            output: dict[str, Any] | None = None
            if "FunctionError" not in response:
                body = response.get("Payload")
                parsed = json.loads(body) if isinstance(body, bytes | str) and body else body
                output = parsed if isinstance(parsed, dict) else None
            self.calls.append(Call(step, event, output, started, self.sim_now()))
            self._sample(step, event)
            return response

        return recorded

    def _sample(self, step: str, event: dict[str, Any]) -> None:
        target = event.get("target")
        if not isinstance(target, dict) or event.get("dryRun") or "autoScalingGroupName" not in target:
            return
        group = str(target["autoScalingGroupName"])
        item = self.lock_of(group)
        if item is None or item.get("holder") != event.get("executionId"):
            self.margins.append(Margin(float("-inf"), step, group))  # acted on a group it holds no lock of
            return
        self.margins.append(Margin(float(item["expiresAt"]) - self.sim_epoch(), step, group))


@dataclass(frozen=True)
class Settings:
    """The bounds the template configures, in seconds."""

    image_timeout: int
    image_fallback: int
    refresh_timeout: int
    refresh_fallback: int
    poll_interval: int
    lock_poll: int
    lock_attempts: int
    queue_check: int
    queue_attempts: int
    approval_timeout: int
    health_timeout: int
    soak: int

    @classmethod
    def of(cls, definition: str, deploy_config: dict[str, Any]) -> Settings:
        """From the deployed definition: its first state puts every bound into `$.settings`, each as
        States.StringToJson('<the substituted value>')."""
        parameters = next(iter(json.loads(definition)["States"].values()))["Parameters"]["settings"]

        def number(key: str) -> int:
            match = re.fullmatch(r"States\.StringToJson\('(-?\d+)'\)", str(parameters[f"{key}.$"]))
            if match is None:
                raise ValueError(
                    f"settings.{key} of the definition is not a substituted number: {parameters[f'{key}.$']}"
                )
            return int(match.group(1))

        # The functions' DEPLOY_CONFIG, parsed by their own model (its defaults fill what the configuration omits).
        blue_green = DeployConfig.model_validate(deploy_config).blue_green
        return cls(
            image_timeout=number("imageTimeoutSeconds"),
            image_fallback=number("imageFallbackSeconds"),
            refresh_timeout=number("refreshTimeoutSeconds"),
            refresh_fallback=number("refreshFallbackSeconds"),
            poll_interval=number("pollIntervalSeconds"),
            lock_poll=number("lockPollSeconds"),
            lock_attempts=number("lockMaxAttempts"),
            queue_check=number("queueCheckSeconds"),
            queue_attempts=number("queueMaxAttempts"),
            approval_timeout=number("approvalTimeoutSeconds"),
            health_timeout=blue_green.health_timeout_minutes * 60,
            soak=blue_green.soak_seconds,
        )


def _entry(wait: str, target: str | None, bound: int, poll: int, started: float, ended: float) -> dict[str, Any]:
    return {
        "wait": wait,
        "target": target,
        "boundSeconds": bound,
        "pollSeconds": poll,
        "elapsedSeconds": round(max(0.0, ended - started), 1),
    }


def _group(call: Call) -> str | None:
    target = call.payload.get("target")
    return str(target.get("autoScalingGroupName")) if isinstance(target, dict) else None


def bounds(calls: list[Call], settings: Settings, approvals: list[tuple[str, float, float]]) -> list[dict[str, Any]]:
    """Every bounded wait the record shows, in the order they started."""
    out: list[tuple[float, dict[str, Any]]] = []

    def add(wait: str, target: str | None, bound: int, poll: int, started: float, ended: float) -> None:
        out.append((started, _entry(wait, target, bound, poll, started, ended)))

    # The lock: the first acquire (the only calls that carry an attempt count) to the last one.
    acquires = [c for c in calls if c.step == "lock" and "attempt" in c.payload]
    if len(acquires) > 1 and any(c.payload.get("action") == "enqueue" for c in acquires):
        # A queued push: lock.queueHours, which the ASL counts as half its queueMaxAttempts looks (stacks/bounds.py)
        bound = settings.queue_check * settings.queue_attempts // 2
        add("queue", None, bound, settings.queue_check, acquires[0].ended, acquires[-1].started)
    elif len(acquires) > 1:
        bound = settings.lock_poll * settings.lock_attempts
        add("lock", None, bound, settings.lock_poll, acquires[0].ended, acquires[-1].started)
    # Each bake: from start_image_build to the last check of that build.
    for start in (c for c in calls if c.step == "start_image_build" and c.output):
        arn = start.output.get("imageBuildVersionArn") if start.output else None
        checks = [
            c
            for c in calls
            if c.step == "check_image_build" and c.payload.get("build", {}).get("imageBuildVersionArn") == arn
        ]
        if arn and checks and start.output:
            add(
                "bake",
                start.output.get("pipeline"),
                settings.image_timeout,
                settings.image_fallback,
                start.started,
                checks[-1].ended,
            )
    refresh_poll = max(settings.refresh_fallback, settings.poll_interval)
    for start in (c for c in calls if c.step == "start_instance_refresh" and c.output and not c.payload.get("dryRun")):
        refresh_id = start.output.get("instanceRefreshId") if start.output else None
        group = _group(start)
        rollbacks = [c for c in calls if c.step == "rollback" and _group(c) == group and c.started >= start.started]
        until = rollbacks[0].started if rollbacks else float("inf")
        checks = [
            c
            for c in calls
            if c.step == "check_refresh" and c.payload.get("instanceRefreshId") == refresh_id and c.started < until
        ]
        if refresh_id and checks:
            add("refresh", group, settings.refresh_timeout, refresh_poll, start.started, checks[-1].ended)
        for rollback in rollbacks[:1]:
            rolled = rollback.output.get("instanceRefreshId") if rollback.output else None
            after = [
                c
                for c in calls
                if c.step == "check_refresh"
                and c.payload.get("instanceRefreshId") == rolled
                and c.started > rollback.started
            ]
            if rolled and after:
                add(
                    "rollback",
                    group,
                    settings.refresh_timeout,
                    settings.refresh_fallback,
                    rollback.started,
                    after[-1].ended,
                )
    # Blue-green: green's health and soak, blue's drain, blue's restoration, each from its first call to its last.
    for wait, first, last, bound in (
        ("green-health", "create_green_group", "check_green_group", settings.health_timeout + settings.soak),
        ("drain", "shift_traffic", "shift_traffic", MAX_DEREGISTRATION_DELAY_SECONDS),
        ("restore", "discard_green", "discard_green", settings.health_timeout),
    ):
        for group in dict.fromkeys(_group(c) for c in calls if c.step == first and not c.payload.get("dryRun")):
            starts = [c for c in calls if c.step == first and _group(c) == group]
            ends = [c for c in calls if c.step == last and _group(c) == group and c.started >= starts[0].started]
            if ends and (first != last or len(ends) > 1):
                add(wait, group, bound, settings.poll_interval, starts[0].ended, ends[-1].ended)
    for stage, started, ended in approvals:
        add("approval", stage, settings.approval_timeout, 0, started, ended)
    return [entry for _, entry in sorted(out, key=lambda pair: pair[0])]


def approvals_of(history: list[dict[str, Any]], at: Callable[[float], float]) -> list[tuple[str, float, float]]:
    """(stage, simulated start, simulated end) of each approval wait, from the execution history: stages run one at
    a time, so each WaitForApproval entered ends at the next WaitForApproval exited (answered, or timed out and
    caught). History timestamps are whole milliseconds, so the task's own end event may carry a time just before
    the simulated clock moved on; the state's exit comes surely after it."""
    out: list[tuple[str, float, float]] = []
    entered: tuple[str, float] | None = None
    for event in history:
        kind = event["type"]
        when = at(event["timestamp"].timestamp())
        if kind == "TaskStateEntered" and event.get("stateEnteredEventDetails", {}).get("name") == "WaitForApproval":
            stage = json.loads(event["stateEnteredEventDetails"].get("input") or "{}").get("stage", {}).get("name")
            entered = (str(stage), when)
        elif entered and kind == "TaskStateExited" and event["stateExitedEventDetails"]["name"] == "WaitForApproval":
            out.append((entered[0], entered[1], when))
            entered = None
    return out


def violations(entries: list[dict[str, Any]], margins: list[Margin]) -> list[str]:
    out = [
        f"bound exceeded: {e['wait']} of {e['target'] or 'the deployment'} ran {e['elapsedSeconds']}s, more than its "
        f"bound {e['boundSeconds']}s plus one poll interval ({e['pollSeconds']}s)"
        for e in entries
        if e["elapsedSeconds"] > e["boundSeconds"] + e["pollSeconds"] + STEP_SLACK_SECONDS
    ]
    seen: set[str] = set()
    for margin in margins:
        if margin.seconds <= 0 and margin.target not in seen:  # the first step per group says it
            seen.add(margin.target)
            what = (
                "without holding its lock"
                if margin.seconds == float("-inf")
                else f"{-margin.seconds:.0f}s after its lock expired"
            )
            out.append(f"lock expired while held: {margin.step} acted on {margin.target} {what}")
    return out


def lock_margins(margins: list[Margin]) -> dict[str, Any]:
    if not margins:
        return {"minSeconds": None, "samples": 0}
    least = min(margins, key=lambda m: m.seconds)
    seconds = None if least.seconds == float("-inf") else round(least.seconds, 1)
    return {"minSeconds": seconds, "samples": len(margins), "step": least.step, "target": least.target}
