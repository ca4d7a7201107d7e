"""The rehearsal's timeline: the states each execution entered, in time order, each with what it did.

A person follows a deployment by its stages, waves and groups, so the timeline says:
- a header when an execution starts a stage or a wave, read from the first state of the Map iteration (the Map's
  ItemSelector puts `stage`, or `wave` and `strategy`, in its input);
- each note under the state that caused it: an Event made during one of the state machine's Lambda invocations
  carries that invocation (`Invocations.during`, rehearsal.clock.attributed_to), and the n-th invocation of a
  function with a payload is the n-th TaskScheduled naming the same function and payload; a wave's branches run
  at once, so the note of one branch would otherwise land under the state another branch entered meanwhile;
- what the harness did (an approval answered, an AWS event delivered, a notification read) at its own time;
- the group a state acts on, when its wave deploys several groups at once;
- when a wait for a task token (an image build, a refresh, an approval, the queue) ended;
- for a dry run that needs a bake, which the state machine ends before any stage (its NeedsBake choice goes
  straight to PruneImages), what each stage and wave would have deployed, from validate_request's plan.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from rehearsal.clock import Event, SimClock, attributed_to

HEADER = "Header"  # an entry that is no state: a stage or wave starting, or a dry run's plan
HARNESS = "Harness"  # an entry that is no state: something the harness or AWS did, at its own time
Source = tuple[str, str, int]  # (function as the state machine names it, canonical payload, n-th such invocation)


def canonical(payload: Any) -> str:
    """A payload as one string, however it was passed (JSON text, bytes or a dict): the key invocations match by."""
    value = json.loads(payload) if isinstance(payload, bytes | str) and payload else payload
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


class Invocations:
    """Numbers the state machine's invocations of each (function, payload), and attributes what happens during
    one to it (rehearsal.clock.Event.source)."""

    def __init__(self) -> None:
        self._seen: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def during(self, function: str, payload: Any) -> Iterator[None]:
        key = (function, canonical(payload))
        with self._lock:
            self._seen[key] += 1
            source = (key[0], key[1], self._seen[key])
        with attributed_to(source):
            yield


@dataclass
class Entry:
    """One line of the timeline and its notes. Iterates as (at, state, kind, notes), the shape it always had."""

    at: float  # simulated seconds
    state: str  # the state's name ("[2] Name" for the second execution), or the header's or harness line's text
    kind: str  # the state type (Task, Choice, ...), HEADER or HARNESS
    notes: list[str] = field(default_factory=list)
    lane: str | None = None  # the group the state acts on, when its wave deploys several at once
    until: float | None = None  # when a wait for a task token ended (simulated seconds)

    def __iter__(self) -> Iterator[Any]:
        return iter((self.at, self.state, self.kind, self.notes))


def build(
    history: list[dict[str, Any]], events: list[Event], clock: SimClock, also: list[dict[str, Any]] | None = None
) -> list[Entry]:
    """The timeline of the first execution's `history` and of every other execution's (`also`: each with its
    "history"), interleaved in time, with `events` placed under the states that caused them."""
    executions = [("", history)] + [(f"[{n}] ", other["history"]) for n, other in enumerate(also or [], start=2)]
    owners = _task_owners(executions)
    notes: dict[tuple[str, int], list[str]] = {}
    rows: list[tuple[float, int, Entry]] = []
    for event in sorted(events, key=lambda ev: ev.real):
        owner = owners.get(event.source) if event.source is not None else None
        if owner is not None:
            notes.setdefault(owner, []).append(event.text)
        else:
            rows.append((event.real, 1, Entry(clock.at(event.real), event.text, HARNESS)))
    for prefix, its_history in executions:
        rows.extend((real, 0, entry) for real, entry in _rows(prefix, its_history, notes, clock))
    return [entry for _, _, entry in sorted(rows, key=lambda row: (row[0], row[1]))]


def _owner(by_id: dict[int, dict[str, Any]], event: dict[str, Any]) -> int | None:
    """The id of the StateEntered event of the state `event` belongs to (following previousEventId)."""
    seen = 0
    while not event["type"].endswith("StateEntered"):
        event = by_id.get(event.get("previousEventId", 0), {"type": ""})
        seen += 1
        if not event["type"] or seen > len(by_id):
            return None
    return int(event["id"])


def _task_owners(executions: list[tuple[str, list[dict[str, Any]]]]) -> dict[Source, tuple[str, int]]:
    """Each invocation (`Source`) → (its execution's prefix, the id of its Task state's StateEntered event)."""
    scheduled = []
    for prefix, history in executions:
        by_id = {int(e["id"]): e for e in history}
        for event in history:
            if event["type"] != "TaskScheduled":
                continue
            try:
                parameters = json.loads(event["taskScheduledEventDetails"]["parameters"])
            except (KeyError, ValueError):
                continue
            if not isinstance(parameters, dict) or "FunctionName" not in parameters:
                continue
            entered = _owner(by_id, event)
            if entered is not None:
                key = (str(parameters["FunctionName"]), canonical(parameters.get("Payload")))
                scheduled.append((event["timestamp"].timestamp(), key, (prefix, entered)))
    seen: Counter[tuple[str, str]] = Counter()
    owners: dict[Source, tuple[str, int]] = {}
    for _, key, owner in sorted(scheduled, key=lambda s: s[0]):
        seen[key] += 1
        owners[(key[0], key[1], seen[key])] = owner
    return owners


def _input(details: dict[str, Any]) -> dict[str, Any]:
    try:
        value = json.loads(details.get("input") or "null")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _payload(event: dict[str, Any]) -> dict[str, Any]:
    """What a Lambda task answered (its TaskSucceeded output's Payload), or {}."""
    try:
        value = json.loads(event["taskSucceededEventDetails"]["output"]).get("Payload")
    except (KeyError, ValueError, AttributeError):
        return {}
    return value if isinstance(value, dict) else {}


def _groups(targets: list[Any]) -> str:
    return ", ".join(str(t.get("autoScalingGroupName")) for t in targets if isinstance(t, dict))


def stage_header(stage: dict[str, Any]) -> str:
    """`stage prod (blue-green): 2 group(s) in 1 wave(s), after approval`."""
    targets = stage.get("targets") or []
    size = max(1, int(stage.get("waveSize") or 1))
    waves = -(-len(targets) // size)
    approval = ", after approval" if stage.get("approval") else ""
    name, strategy = stage.get("name"), stage.get("strategy", "rolling")
    return f"stage {name} ({strategy}): {len(targets)} group(s) in {waves} wave(s){approval}"


def wave_header(stage: dict[str, Any] | None, number: int, wave: list[Any]) -> str:
    """`stage prod (blue-green), wave 1: web-app-prod-a, web-app-prod-b`."""
    stage = stage or {}
    return f"stage {stage.get('name')} ({stage.get('strategy', 'rolling')}), wave {number}: {_groups(wave)}"


def plan(validated: dict[str, Any]) -> list[str]:
    """What a dry run that needs a bake would have done, from validate_request's answer: the state machine ends it
    before any stage, so nothing of this is rehearsed."""
    request = validated.get("request") or {}
    commit = f" of commit {request['commit']}" if request.get("commit") else ""
    lines = [
        f"dry run: the state machine skips the bake and every stage; it would bake the {validated.get('pipeline')} "
        f"image{commit}, then"
    ]
    for stage in validated.get("stages") or []:
        targets = stage.get("targets") or []
        size = max(1, int(stage.get("waveSize") or 1))
        how = "launch green beside each and shift traffic" if stage.get("strategy") == "blue-green" else "refresh"
        after = " after approval" if stage.get("approval") else ""
        for number, start in enumerate(range(0, len(targets), size), start=1):
            lines.append(f"{wave_header(stage, number, targets[start : start + size])}: would {how}{after}")
    return lines


def _rows(
    prefix: str, history: list[dict[str, Any]], notes: dict[tuple[str, int], list[str]], clock: SimClock
) -> Iterator[tuple[float, Entry]]:
    """One execution's entries, each with the real time it sorts by."""
    by_id = {int(e["id"]): e for e in history}
    ended: dict[int, float] = {}  # StateEntered id → when the state exited (real)
    token_waits: set[int] = set()  # StateEntered ids of waitForTaskToken tasks
    validated: dict[int, dict[str, Any]] = {}  # StateEntered id → validate_request's answer (a dry run's plan)
    for event in history:
        kind = event["type"]
        if not (kind.endswith("StateExited") or kind in {"TaskScheduled", "TaskSucceeded"}):
            continue
        owner = _owner(by_id, event)
        if owner is None:
            continue
        if kind.endswith("StateExited"):
            ended[owner] = event["timestamp"].timestamp()
        elif kind == "TaskScheduled":
            if str(event["taskScheduledEventDetails"].get("resource", "")).endswith("waitForTaskToken"):
                token_waits.add(owner)
        elif {"request", "stages", "needsBake"} <= set(_payload(event)):
            validated[owner] = _payload(event)
    stage: dict[str, Any] | None = None
    wave_size = 0
    planned = False
    pending_plan: tuple[float, float, list[str]] | None = None
    for event in history:
        if not event["type"].endswith("StateEntered"):
            continue
        details = event["stateEnteredEventDetails"]
        kind = event["type"].removesuffix("StateEntered")
        # History timestamps are coarser than the clock: a state entered right after a Wait must count the Wait's
        # simulated seconds, the Wait itself must not.
        real = event["timestamp"].timestamp() + (0 if kind == "Wait" else 0.002)
        at = clock.at(real)
        state_input = _input(details)
        previous = by_id.get(int(event.get("previousEventId", 0)), {})
        if previous.get("type") == "MapIterationStarted":
            number = int(previous.get("mapIterationStartedEventDetails", {}).get("index", 0)) + 1
            if isinstance(state_input.get("stage"), dict):
                stage, wave_size, planned = state_input["stage"], 0, True
                yield real, Entry(at, prefix + stage_header(stage), HEADER)
            elif isinstance(state_input.get("wave"), list):
                wave_size = len(state_input["wave"])
                yield real, Entry(at, prefix + wave_header(stage, number, state_input["wave"]), HEADER)
        target = state_input.get("target")
        lane = str(target.get("autoScalingGroupName")) if isinstance(target, dict) and wave_size > 1 else None
        identity = int(event["id"])
        until = clock.at(ended[identity]) if identity in token_waits and identity in ended else None
        yield real, Entry(at, prefix + details["name"], kind, notes.get((prefix, identity), []), lane, until)
        answer = validated.get(identity)
        if answer and answer.get("needsBake") and (answer.get("request") or {}).get("dryRun"):
            pending_plan = (real + 0.001, at, plan(answer))
    if pending_plan is not None and not planned:
        real, at, lines = pending_plan
        for line in lines:
            yield real, Entry(at, prefix + line, HEADER)
