#!/usr/bin/env python3
"""What runs where, since when; what is deploying, locked, queued or waiting for approval; what happened lately.

    python -m scripts.status status  [--json]
    python -m scripts.status history [--last 10] [--json]

Everything is read from AWS, under your own credentials, and nothing is changed:
- per stage and group (cdk.json's stages), the group serving the target (blue-green: the one tagged
  immutable-ami:role=live), its launch template version, the AMI that version launches and the AMI's tags
  (commit, branch, build time), and since when (the end of the group's last successful instance refresh, the
  live group's role-since tag, else the version's creation);
- the executions running now (ListExecutions) and the state each one is in (GetExecutionHistory);
- the lock table (stack output LockTableName): lock holders and expiry, queued pushes, pending approvals. It is
  scanned without its task tokens (a ProjectionExpression), so `status` never prints or holds one;
- `history`: the last N executions with trigger, commit, outcome, duration and per stage what became of it
  (the DeployStages Map's iteration events).

The state machine and table are found as `make start` and `make approve` find them (--state-machine-arn,
$STATE_MACHINE_ARN, --table, $LOCK_TABLE_NAME, else the outputs of the stack <application>-ami-pipeline of
cdk.json, or --stack, in --region or your default region). The stack output StatusReaderPolicyArn is a managed
policy granting exactly these reads. Exit codes: 0 shown; 2 a usage, credentials, region or permission problem.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from botocore.exceptions import ClientError, NoCredentialsError, NoRegionError
from validate_request.logic import check_request, parse_request

from scripts.start_deployment import (
    NO_REGION,
    StartError,
    aws_failure,
    deploy_config,
    stack_name,
    stack_outputs,
    state_machine_arn,
)
from scripts.status_fleet import Fleet, iso, read_table
from shared.aws.stepfunctions import last_state_entered
from shared.config import DeployConfig
from shared.errors import InvalidInput

TABLE_OUTPUT = "LockTableName"  # stacks/approvals.py
POLICY_OUTPUT = "StatusReaderPolicyArn"  # stacks/approvals.py
STAGES_MAP = "DeployStages"  # the ASL's Map over the request's stages: one iteration per stage, in order
# History event types of a Map iteration's end and where their details are (HistoryEvent:
# https://docs.aws.amazon.com/step-functions/latest/apireference/API_HistoryEvent.html).
_ITERATION_ENDS = {
    "MapIterationSucceeded": ("mapIterationSucceededEventDetails", "deployed"),
    "MapIterationFailed": ("mapIterationFailedEventDetails", "failed"),
    "MapIterationAborted": ("mapIterationAbortedEventDetails", "aborted"),
}


class StatusError(Exception):
    """A problem the operator can fix, with the message that says how."""


# --- executions -------------------------------------------------------------------------------------------------


def _events(sfn: Any, execution: str, *, reverse: bool = False, limit: int | None = None) -> Iterator[dict[str, Any]]:
    """GetExecutionHistory without execution data (no inputs or outputs, hence no task tokens), page after page (at
    most 1,000 events a page), oldest first unless `reverse`."""
    request: dict[str, Any] = {
        "executionArn": execution,
        "reverseOrder": reverse,
        "maxResults": min(limit or 1000, 1000),
        "includeExecutionData": False,
    }
    seen = 0
    while True:
        page = sfn.get_execution_history(**request)
        for event in sorted(page.get("events", []), key=lambda e: int(e["id"]), reverse=reverse):
            yield event
            seen += 1
            if limit is not None and seen >= limit:
                return
        if not page.get("nextToken"):
            return
        request["nextToken"] = page["nextToken"]


def plan_of(execution_input: str | None, config: DeployConfig) -> dict[str, Any]:
    """The request and stages the state machine's first state makes of the execution's input, by the same checks
    (validate_request); {} when it rejects it. Read from DescribeExecution's input, not from the history, so no
    history event's data (which holds task tokens) is ever asked for."""
    try:
        request = parse_request(json.loads(execution_input or "null"))
        stages = check_request(request, config)
    except (InvalidInput, ValueError):
        return {}
    return {"request": request.model_dump(by_alias=True, exclude_none=True), "stages": [s.name for s in stages]}


def stage_results(events: list[dict[str, Any]], stages: list[str], error: str | None) -> dict[str, str]:
    """Per stage what the DeployStages Map's iteration ended as (a failed one with the execution's error); stages
    it never reached are "not started"."""
    results = dict.fromkeys(stages, "not started")
    for event in events:
        details_key, outcome = _ITERATION_ENDS.get(str(event.get("type")), ("", ""))
        details = event.get(details_key) or {}
        index = details.get("index")
        if outcome and details.get("name") == STAGES_MAP and isinstance(index, int) and 0 <= index < len(stages):
            results[stages[index]] = f"{outcome} ({error})" if outcome == "failed" and error else outcome
    return results


def last_state(sfn: Any, execution: str) -> str | None:
    """The state the execution entered last: where it is, or where it ended."""
    return last_state_entered(list(_events(sfn, execution, reverse=True, limit=20)))


def describe_run(sfn: Any, execution: Mapping[str, Any], config: DeployConfig, *, full: bool) -> dict[str, Any]:
    """One execution: its request, where it is or how it ended, how long it took; with `full`, per stage."""
    arn = str(execution["executionArn"])
    described = sfn.describe_execution(executionArn=arn)
    plan = plan_of(described.get("input"), config)
    request = plan.get("request", {})
    start, stop = described.get("startDate"), described.get("stopDate")
    ended = last_state(sfn, arn)
    run: dict[str, Any] = {
        "execution": arn,
        "name": execution.get("name"),
        "status": described["status"],
        "state": ended,
        "action": request.get("action"),
        "trigger": request.get("trigger"),
        "commit": request.get("commit") or request.get("amiId"),
        "branch": request.get("branch"),
        "dryRun": bool(request.get("dryRun")),
        "startedAt": iso(start),
        "stoppedAt": iso(stop),
        "seconds": int((stop - start).total_seconds()) if start and stop else None,
        "outcome": outcome_of(described, ended),
    }
    if full:
        stages = plan.get("stages", [])
        if ended == "Superseded":  # it never got its targets: nothing ran
            run["stages"] = dict.fromkeys(stages, "not started")
        elif described["status"] == "SUCCEEDED":
            unchanged = json.loads(described.get("output") or "{}").get("outcome") != "deployed"
            run["stages"] = dict.fromkeys(stages, "unchanged" if unchanged else "deployed")
        else:
            run["stages"] = stage_results(list(_events(sfn, arn)), stages, described.get("error"))
    return run


def outcome_of(described: Mapping[str, Any], ended: str | None) -> str:
    status = str(described["status"])
    if status == "RUNNING":
        return f"running ({ended})" if ended else "running"
    if status == "SUCCEEDED":
        return "superseded" if ended == "Superseded" else "deployed"
    error = described.get("error")
    return f"{status.lower()}: {error}" if error else status.lower()


def executions(sfn: Any, machine: str, *, status: str | None = None, last: int = 100) -> list[dict[str, Any]]:
    """ListExecutions, newest first (as the API orders them), at most `last`."""
    found: list[dict[str, Any]] = []
    request: dict[str, Any] = {"stateMachineArn": machine, "maxResults": min(last, 1000)}
    if status:
        request["statusFilter"] = status
    while len(found) < last:
        page = sfn.list_executions(**request)
        found.extend(page.get("executions", []))
        if not page.get("nextToken"):
            break
        request["nextToken"] = page["nextToken"]
    return found[:last]


# --- the commands -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Context:
    config: DeployConfig
    client: Callable[[str], Any]  # a boto3 client of the pipeline's region, by service name
    machine: str
    table: str
    now: int


def status(context: Context) -> dict[str, Any]:
    fleet = Fleet(context.client("autoscaling"), context.client("ec2"))
    sfn = context.client("stepfunctions")
    groups = [
        asdict(fleet.target(context.config.application, stage, t.auto_scaling_group_name, t.launch_template_id))
        for stage in context.config.stages
        for t in stage.targets
    ]
    view = read_table(context.client("dynamodb"), context.table, context.now)
    running = [
        describe_run(sfn, e, context.config, full=False) for e in executions(sfn, context.machine, status="RUNNING")
    ]
    return {"groups": groups, "running": running, **asdict(view)}


def history(context: Context, last: int) -> dict[str, Any]:
    sfn = context.client("stepfunctions")
    return {
        "deployments": [
            describe_run(sfn, e, context.config, full=True) for e in executions(sfn, context.machine, last=last)
        ]
    }


def table(rows: list[list[Any]], header: list[str]) -> list[str]:
    cells = [[("-" if v is None else str(v)) for v in row] for row in [header, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in cells]


def short(value: Any, size: int = 12) -> Any:
    return value[:size] if isinstance(value, str) and len(value) > size and value[:size].isalnum() else value


def render_status(found: Mapping[str, Any]) -> list[str]:
    lines = ["Groups"]
    lines += table(
        [
            [g["stage"], g["group"] or g["target"], g["ami"], short(g["commit"]), g["branch"], g["since"], g["note"]]
            for g in found["groups"]
        ],
        ["STAGE", "GROUP", "AMI", "COMMIT", "BRANCH", "SINCE", "NOTE"],
    )
    lines += ["", "Running"]
    running = [[r["name"], r["action"], short(r["commit"]), r["state"], r["startedAt"]] for r in found["running"]]
    lines += table(running, ["EXECUTION", "ACTION", "COMMIT", "STATE", "STARTED"]) if running else ["  none"]
    lines += ["", "Locks"]
    locks = [
        [
            lock["target"],
            str(lock["holder"]).rsplit(":", 1)[-1],
            lock["since"],
            lock["expires"] + (" (expired)" if lock["expired"] else ""),
        ]
        for lock in found["locks"]
    ]
    lines += table(locks, ["TARGET", "HOLDER", "SINCE", "EXPIRES"]) if locks else ["  none"]
    lines += ["", "Queued"]
    queued = [
        [
            str(q["execution"]).rsplit(":", 1)[-1],
            q["trigger"],
            short(q["commit"]),
            ",".join(q["targets"]),
            q["queuedSince"],
        ]
        for q in found["queued"]
    ]
    lines += table(queued, ["EXECUTION", "TRIGGER", "COMMIT", "TARGETS", "QUEUED SINCE"]) if queued else ["  none"]
    lines += ["", "Pending approvals"]
    approvals = [
        [str(a["execution"]).rsplit(":", 1)[-1], a["stage"], a["since"], a["expires"]] for a in found["approvals"]
    ]
    lines += table(approvals, ["EXECUTION", "STAGE", "SINCE", "EXPIRES"]) if approvals else ["  none"]
    for a in found["approvals"]:
        lines.append(f"  answer: make approve EXECUTION={a['execution']} STAGE={a['stage']}  (or make reject ...)")
    return lines


def render_history(found: Mapping[str, Any]) -> list[str]:
    rows = [
        [
            d["startedAt"],
            d["trigger"] or d["action"],
            short(d["commit"]),
            d["outcome"],
            f"{d['seconds'] // 60}m{d['seconds'] % 60:02d}s" if d["seconds"] is not None else None,
            " ".join(f"{stage}={result}" for stage, result in d.get("stages", {}).items()) or None,
            d["name"],
        ]
        for d in found["deployments"]
    ]
    if not rows:
        return ["no deployments yet"]
    return table(rows, ["STARTED", "TRIGGER", "COMMIT", "OUTCOME", "DURATION", "STAGES", "EXECUTION"])


def context_of(args: argparse.Namespace, session: Any, config: DeployConfig, now: int) -> Context:
    machine = state_machine_arn(args, config, session)
    region = machine.split(":")[3]

    def client(service: str) -> Any:
        return session.client(service, region_name=region)

    table_name = args.table or os.environ.get("LOCK_TABLE_NAME")
    if not table_name:
        outputs = stack_outputs(client("cloudformation"), stack_name(args, config))
        if TABLE_OUTPUT not in outputs:
            raise StatusError(f"stack {stack_name(args, config)} has no {TABLE_OUTPUT} output (pass --table)")
        table_name = outputs[TABLE_OUTPUT]
    return Context(config=config, client=client, machine=machine, table=table_name, now=now)


def main(argv: list[str] | None = None, session: Any = None, clock: Callable[[], float] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["status", "history"])
    parser.add_argument("--last", type=int, default=10, help="history: how many executions (default 10)")
    parser.add_argument("--json", action="store_true", help="one JSON object instead of tables")
    parser.add_argument("--state-machine-arn")
    parser.add_argument("--stack", help="the pipeline's stack (default: <application>-ami-pipeline from cdk.json)")
    parser.add_argument("--table", help="the lock table (default: $LOCK_TABLE_NAME or the stack's output)")
    parser.add_argument("--region", help="where to look for the stack (default: your AWS configuration's)")
    args = parser.parse_args(argv)
    if args.last < 1:
        parser.error("--last must be at least 1")
    if session is None:
        import boto3

        session = boto3.session.Session()
    now = int((clock or time.time)())
    try:
        context = context_of(args, session, deploy_config(), now)
        found = status(context) if args.command == "status" else history(context, args.last)
    except (StartError, StatusError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (NoCredentialsError, NoRegionError, ClientError) as exc:
        message = aws_failure(exc, no_region=NO_REGION, denied_hint=f" (attach the stack's {POLICY_OUTPUT} policy)")
        print(f"error: {message}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(found, sort_keys=True, default=str))
    else:
        print("\n".join(render_status(found) if args.command == "status" else render_history(found)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
