"""Step Functions' hard limits, and how close an execution came to them, read from its history.

The seam (rehearsal.moto_seam) makes an execution fail at these limits as AWS does; this module observes,
after a run, how near it came, so a deployment that would break them at a larger scale (more targets, more
waves, a longer bake) is seen before it fails:

- `observe(history)`: the history's size against the history quota, and its largest payload (a state's
  input or output, a task's parameters or result) against the payload quota, with the state it belongs to.
- `violations(observation)`: one line per limit the execution came above `WARN_SHARE` of.

`history` is the list of events `GetExecutionHistory` returns, all pages (rehearsal.invariants.history_of),
in id order, each with its `*EventDetails` as botocore parses them.
"""

from __future__ import annotations

from typing import Any

# AWS Step Functions Developer Guide, "Step Functions service quotas", quotas related to state machine
# executions (hard quotas): "Maximum execution history size: 25,000 events in a single state machine execution
# history. If the execution history reaches this quota, the execution will fail."
HISTORY_CAP = 25_000
# Same page, quotas related to task executions: "Maximum input or output size for a task, activity, or state:
# 256 KiB of data as a UTF-8 encoded string", which "affects tasks (activity, Lambda function, or integrated
# service), state or execution output, and input data when scheduling a task, entering a state, or starting an
# execution".
PAYLOAD_LIMIT_BYTES = 256 * 1024
# What an execution that reaches the history quota records: the quotas page says only that "the execution will
# fail". What AWS records, observed and published in floci-io/floci#2734 (the message users quote in
# aws-samples/aws-organizations-tag-inventory#16 and loads/ardere#86): event 25,000 is the ExecutionFailed
# event itself, error States.Runtime, with this cause.
HISTORY_CAP_ERROR = "States.Runtime"
HISTORY_CAP_CAUSE = "The execution reached the maximum number of history events ({cap})."
# The error of a payload above the payload quota, which moto enforces itself, with `size < 262144`: exactly
# 256 KiB is refused. The quotas page ("Maximum ... size ... 256 KiB") reads as inclusive; the stricter reading
# is kept.
DATA_LIMIT_EXCEEDED = "States.DataLimitExceeded"
WARN_SHARE = 0.8  # above this share of a limit an execution is reported: a larger run may reach the limit

_PAYLOAD_FIELDS = ("input", "output", "parameters")  # the event details that carry a payload


def observe(history: list[dict[str, Any]]) -> dict[str, Any]:
    """How large the execution's history is and its largest payload, with the limits they are held to.

    {"historyEvents", "historyCap", "maxPayloadBytes", "payloadLimit", "largestPayloadState",
    "largestPayloadEvent"}: the state is the one the event belongs to (its StateEntered, followed back through
    previousEventId), or "(execution)" for the execution's own input and output; both are None when no event
    carries a payload."""
    state_of: dict[int, str | None] = {}
    largest = 0
    largest_state: str | None = None
    largest_event: str | None = None
    for event in history:
        details = _details(event)
        if event["type"].startswith("Execution"):
            state: str | None = "(execution)"
        elif isinstance(details.get("name"), str):  # a state's Entered/Exited event names its state
            state = details["name"]
        else:
            state = state_of.get(int(event.get("previousEventId", 0)))
        state_of[int(event["id"])] = state if state != "(execution)" else None
        for field in _PAYLOAD_FIELDS:
            value = details.get(field)
            if isinstance(value, str):
                size = len(value.encode("utf-8"))  # the quota counts UTF-8 bytes
                if size > largest:
                    largest, largest_state, largest_event = size, state, event["type"]
    return {
        "historyEvents": len(history),
        "historyCap": HISTORY_CAP,
        "maxPayloadBytes": largest,
        "payloadLimit": PAYLOAD_LIMIT_BYTES,
        "largestPayloadState": largest_state,
        "largestPayloadEvent": largest_event,
    }


def violations(observation: dict[str, Any], *, share: float = WARN_SHARE) -> list[str]:
    """One line for each limit the execution came above `share` of (reaching a limit fails it on AWS)."""
    found = []
    events, cap = int(observation["historyEvents"]), int(observation["historyCap"])
    if events > share * cap:
        found.append(
            f"history: {events} events, {events / cap:.0%} of the {cap}-event execution history quota "
            "(above it the execution fails with States.Runtime; Step Functions service quotas)"
        )
    size, limit = int(observation["maxPayloadBytes"]), int(observation["payloadLimit"])
    if size > share * limit:
        found.append(
            f"payload: {size} bytes in {observation['largestPayloadEvent']} of state "
            f"{observation['largestPayloadState']}, {size / limit:.0%} of the {limit}-byte payload quota "
            "(above it the state fails with States.DataLimitExceeded, which no Catch handles)"
        )
    return found


def _details(event: dict[str, Any]) -> dict[str, Any]:
    for key, value in event.items():
        if key.endswith("EventDetails") and isinstance(value, dict):
            return value
    return {}
