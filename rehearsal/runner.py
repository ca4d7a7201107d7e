"""Run one scenario: build the world, run the real ASL in moto's interpreter with the real handlers,
answer approvals, then read back what changed and check the invariants."""

from __future__ import annotations

import bisect
import contextlib
import heapq
import importlib
import io
import itertools
import json
import logging
import os
import sys
import threading
import time
import traceback
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ASL_FILE = PROJECT_ROOT / "statemachine" / "deploy.asl.json"
SCENARIOS_DIR = PROJECT_ROOT / "statemachine" / "scenarios"
DEFAULT_SCENARIO = "deploy-two-stages-with-approval"
FUNCTION_PREFIX = "arn:aws:lambda:eu-west-1:123456789012:function:web-app-"
STEPS = (
    "validate_request",
    "lock",
    "start_image_build",
    "check_image_build",
    "publish_launch_template_version",
    "start_instance_refresh",
    "check_refresh",
    "rollback",
    "prune_images",
    "register_wait",
    "relay_event",
    "create_green_group",
    "check_green_group",
    "shift_traffic",
    "discard_green",
    "retire_groups",
)
TERMINAL_EVENTS = {"DeploymentSucceeded", "DeploymentFailed", "DeploymentRejected"}
RUN_TIMEOUT_SECONDS = 60  # real seconds; a scenario may allow more ("wallTimeoutSeconds")


def scenario_names() -> list[str]:
    return sorted(p.stem for p in SCENARIOS_DIR.glob("*.json"))


def load_scenario(name: str) -> dict[str, Any]:
    path = SCENARIOS_DIR / f"{name}.json"
    if not path.is_file():
        raise SystemExit(f"no scenario {name!r}; known: {', '.join(scenario_names())}")
    scenario = json.loads(path.read_text())
    scenario.setdefault("name", name)
    return scenario


IDLE_SECONDS = 0.2  # no activity for this long: an unanswered task token can time out
QUIET_SECONDS = 0.05  # no activity for this long: every branch waits, the next AWS event may happen


class EventQueue:
    """AWS events due at a simulated time: delivered in time order when the workflow is waiting."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, str, str, str]] = []
        self._seq = itertools.count()
        self._lock = threading.Lock()

    def push(self, at: float, kind: str, resource_id: str, status: str) -> None:
        with self._lock:
            heapq.heappush(self._heap, (at, next(self._seq), kind, resource_id, status))

    def pop(self) -> tuple[float, str, str, str] | None:
        with self._lock:
            if not self._heap:
                return None
            at, _, kind, resource_id, status = heapq.heappop(self._heap)
            return at, kind, resource_id, status

    def __len__(self) -> int:
        return len(self._heap)


class Activity:
    """What the rehearsal is doing: tokens nobody will answer time out once everything else is quiet."""

    def __init__(self, queue: EventQueue | None = None) -> None:
        self._last = time.time()
        self._busy = 0
        self._unanswered = 0
        self._lock = threading.Lock()
        self._queue = queue if queue is not None else EventQueue()

    def unanswered_token(self) -> None:
        with self._lock:
            self._unanswered += 1

    def take_timeout(self) -> bool:
        """True once per unanswered token, when nothing else is happening."""
        with self._lock:
            if (
                self._unanswered
                and not self._busy
                and not len(self._queue)
                and time.time() - self._last >= IDLE_SECONDS
            ):
                self._unanswered -= 1
                return True
            return False

    def touch(self) -> None:
        self._last = time.time()

    def quiet_for(self) -> float:
        return 0.0 if self._busy else time.time() - self._last

    def begin(self) -> None:
        with self._lock:
            self._busy += 1
        self.touch()

    def end(self) -> None:
        with self._lock:
            self._busy -= 1
        self.touch()


class SimClock:
    """Real elapsed time plus every wait the seam skipped: the deployment's simulated time."""

    def __init__(self) -> None:
        self._start = time.time()
        self._lock = threading.Lock()
        self._real: list[float] = [self._start]
        self._offset: list[float] = [0.0]

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._real.append(time.time())
            self._offset.append(self._offset[-1] + max(0.0, seconds))

    def at(self, real_timestamp: float) -> float:
        index = bisect.bisect_right(self._real, real_timestamp) - 1
        return real_timestamp - self._start + self._offset[max(index, 0)]

    def now(self) -> float:
        return self.at(time.time())


@dataclass
class Event:
    real: float
    text: str


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
    timeline: list[tuple[float, str, str, list[str]]] = field(default_factory=list)  # (sim s, state, type, notes)
    invocations: dict[str, int] = field(default_factory=dict)
    builds: list[str] = field(default_factory=list)  # pipelines baked, in order
    world_images: dict[str, list[str]] = field(default_factory=dict)  # "app"/"base" → ids, oldest first
    other_locks: list[str] = field(default_factory=list)  # targets still locked by other executions
    lags: list[float] = field(default_factory=list)  # simulated seconds from a build/refresh ending to being seen
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)  # blue-green targets' groups at the end
    groups_deleted: list[str] = field(default_factory=list)  # blue-green groups that existed at the start

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
            "simulatedSeconds": round(self.simulated_seconds, 1),
            "wallSeconds": round(self.wall_seconds, 2),
            "builds": self.builds,
            **({"groups": self.groups, "groupsDeleted": self.groups_deleted} if self.groups else {}),
        }


class _Context:
    function_name = "rehearsal"
    memory_limit_in_mb = 256
    invoked_function_arn = FUNCTION_PREFIX + "rehearsal"
    aws_request_id = "00000000-0000-0000-0000-000000000000"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


class Dispatcher:
    """Runs the real handler of a step in-process, answering like Lambda."""

    def __init__(self, scenario: dict[str, Any], events: list[Event], activity: Activity | None = None) -> None:
        self.activity = activity or Activity()
        self.after: dict[str, Any] = {}  # step → callable(event, result): what happens in the world meanwhile
        self._faults = {step: list(errors) for step, errors in scenario.get("lambdaFaults", {}).items()}
        self._events = events
        self.invocations: dict[str, int] = {}
        self.logs: list[str] = []
        self._handlers: dict[str, Any] = {}
        self.before: dict[str, Any] = {}  # step → callable(event), the world moving on between attempts
        # One invocation at a time: handlers share module state (Powertools' metrics, stdout capture) in this
        # process, where Lambda would give each concurrent invocation its own. Reentrant for the relay hook.
        self._serial = threading.RLock()

    def load(self) -> None:
        lambdas = str(PROJECT_ROOT / "lambdas")
        if lambdas not in sys.path:
            sys.path.insert(0, lambdas)  # the Lambda runtime's layout: the code root is on the path
        for name in [m for m in sys.modules if m.split(".")[0] in STEPS]:
            del sys.modules[name]  # handlers read their configuration at import: re-import per world
        clients = importlib.import_module("shared.aws.clients")
        clients.client.cache_clear()
        for step in STEPS:
            with contextlib.redirect_stdout(io.StringIO()):
                self._handlers[step] = importlib.import_module(f"{step}.handler").lambda_handler

    def invoke(self, function_name: str, payload: Any) -> dict[str, Any]:
        with self._serial:
            self.activity.begin()
            try:
                return self._invoke(function_name, payload)
            finally:
                self.activity.end()

    def _invoke(self, function_name: str, payload: Any) -> dict[str, Any]:
        step = function_name.removeprefix(FUNCTION_PREFIX)
        event = json.loads(payload) if isinstance(payload, bytes | str) else payload or {}
        self.invocations[step] = self.invocations.get(step, 0) + 1
        if step in self.before:
            self.before[step](event, self.invocations[step])
        faults = self._faults.get(step)
        error = faults.pop(0) if faults else None  # a null entry: this invocation runs normally
        if error is not None:
            self._events.append(Event(time.time(), f"{step}: Lambda answered {error} (scenario fault)"))
            return {
                "StatusCode": 200,
                "FunctionError": "Unhandled",
                "Payload": {"errorType": error, "errorMessage": "rehearsal fault"},
            }
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                result = self._handlers[step](event, _Context())
        except Exception as exc:
            self.logs.append(out.getvalue() + traceback.format_exc())
            self._events.append(Event(time.time(), f"{step}: {type(exc).__name__}: {exc}"))
            return {
                "StatusCode": 200,
                "FunctionError": "Unhandled",
                "Payload": {"errorType": type(exc).__name__, "errorMessage": str(exc)},
            }
        self.logs.append(out.getvalue())
        summary = summarize(step, result)
        if summary:
            self._events.append(Event(time.time(), summary))
        if step in self.after:
            self.after[step](event, result)
        return {"StatusCode": 200, "Payload": result}


def summarize(step: str, out: dict[str, Any]) -> str:
    """One line a person can read for what a step did."""
    if step == "validate_request":
        req = out["request"]
        what = req.get("commit") or req.get("amiId") or ""
        stages = ", ".join(s["name"] for s in out["stages"])
        return f"request: {req['action']} {what} → stages {stages}{' (dry run)' if req.get('dryRun') else ''}"
    if step == "lock":
        if out.get("acquired"):
            return f"lock acquired on {', '.join(out['targets'])}"
        if out.get("released"):
            return f"lock released on {', '.join(out['targets'])}"
        if out.get("holder"):
            return f"lock held by {out['holder'].rsplit(':', 1)[-1]}, waiting (attempt {out.get('attempt')})"
        return ""
    if step == "publish_launch_template_version":
        pruned = f", pruned versions {out['prunedVersions']}" if out.get("prunedVersions") else ""
        return (
            f"{out['launchTemplateId']}: version {out['version']} is the default (was {out['previousVersion']}){pruned}"
        )
    if step == "start_instance_refresh":
        adopted = " adopted" if out.get("adopted") else ""
        return f"{out['autoScalingGroupName']}: refresh {out.get('instanceRefreshId')}{adopted}"
    if step == "check_refresh":
        return (
            f"health: {out['verdict']} ({out['status']}, {out['percentageComplete']}%) {out.get('reason', '')}".rstrip()
        )
    if step == "rollback":
        return f"{out['autoScalingGroupName']}: rollback: {'; '.join(out['actions'])}"
    if step == "prune_images":
        counts = [len(out[k]) for k in ("imagesPruned", "snapshotsDeleted", "imagesKept")]
        return "pruned {} AMI(s), {} snapshot(s); kept {}".format(*counts)
    if step == "check_image_build":
        return f"image build {out['status']}{' → ' + out['amiId'] if out.get('amiId') else ''}"
    if step == "register_wait":
        return f"waiting for the {event_kind(out)} to finish" if not out.get("alreadyDone") else ""
    if step == "relay_event":
        return (
            f"event relayed: {out.get('kind')} {out.get('resourceId')} resumed the execution"
            if out.get("resumed")
            else (f"event not relayed: {out.get('reason')}")
        )
    if step == "start_image_build":
        return f"{out['pipeline']} image build requested" + (
            f" for commit {out['commit']}" if out.get("commit") else ""
        )
    return _summarize_blue_green(step, out)


def _summarize_blue_green(step: str, out: dict[str, Any]) -> str:
    if step == "create_green_group":
        if out.get("alreadyLive"):
            return f"{out['blueGroupName']} already runs the image: nothing to do"
        how = "brought back (retained)" if out.get("reused") else "created"
        size = f"{out['desiredCapacity']} instance(s)"
        return f"green {out['greenGroupName']} {how} with {size} beside {out['blueGroupName']}"
    if step == "check_green_group":
        healthy = f"{out.get('healthyTargets')}/{out.get('desired')} healthy"
        return f"green: {out['verdict']} ({healthy}) {out.get('reason', '')}".rstrip()
    if step == "shift_traffic":
        if not out.get("done"):
            return f"{out['blueGroupName']} leaving the target groups (draining)"
        return f"{out['greenGroupName']} is live; {out['blueGroupName']} retained ({out['oldGroup']})"
    if step == "discard_green":
        done = [k for k in ("greenDeleted", "greenRetained", "blueRestored") if out.get(k)]
        return f"green discarded: {', '.join(done) or 'nothing to undo'}; default version {out.get('defaultVersion')}"
    if step == "retire_groups":
        return f"retention: deleted {out.get('deleted') or 'none'}, kept {out.get('kept') or 'none'}"
    return ""


def event_kind(out: dict[str, Any]) -> str:
    return "image build" if out.get("kind") == "image" else "refresh"


def _relay_completion(
    dispatcher: Dispatcher,
    emulated: Any,
    clock: SimClock,
    scenario: dict[str, Any],
    events: list[Event],
    queue: EventQueue,
) -> Any:
    """After register_wait: the resource will end at a simulated time, and AWS will emit its event then.

    The harness delivers it (to the real relay_event handler, as EventBridge would) when the workflow
    is waiting, unless the scenario loses it (`lostEvents`): then the task token times out and the
    fallback poll takes over.
    """
    lost = {kind: int(count) for kind, count in scenario.get("lostEvents", {}).items()}

    def after_register(event: dict[str, Any], result: dict[str, Any]) -> None:
        if result.get("alreadyDone"):
            return
        kind, resource_id = event["kind"], event["resourceId"]
        status, seconds = emulated.finish(kind, resource_id)
        if status is None:
            dispatcher.activity.unanswered_token()  # still running for good: only the fallback poll can see it
            return
        if lost.get(kind, 0) > 0:
            lost[kind] -= 1
            events.append(Event(time.time(), f"{kind} {status}: its event will be lost (scenario)"))
            dispatcher.activity.unanswered_token()
            return
        queue.push(clock.now() + seconds, kind, resource_id, status)

    return after_register


def definition(settings: dict[str, Any], topic_arn: str, asl: str | None = None) -> str:
    text = ASL_FILE.read_text() if asl is None else asl
    substitutions = {
        **{f"{''.join(p.capitalize() for p in step.split('_'))}FunctionArn": FUNCTION_PREFIX + step for step in STEPS},
        "NotificationTopicArn": topic_arn,
        "PollIntervalSeconds": str(settings.get("pollIntervalSeconds", 30)),
        "RefreshFallbackSeconds": str(settings.get("refreshFallbackSeconds", 300)),
        "RefreshTimeoutSeconds": str(settings.get("refreshTimeoutSeconds", 3600)),
        "ImageFallbackSeconds": str(settings.get("imageFallbackSeconds", 600)),
        "ImageMaxChecks": str(settings.get("imageMaxChecks", 34)),
        "LockPollSeconds": str(settings.get("lockPollSeconds", 30)),
        "LockMaxAttempts": str(settings.get("lockMaxAttempts", 20)),
    }
    for key, value in substitutions.items():
        text = text.replace("${" + key + "}", value)
    if "${" in text:
        raise RuntimeError(f"unsubstituted placeholder in {ASL_FILE}: {text[text.index('${') :][:60]}")
    return text


def resolve(value: Any, world: Any) -> Any:
    """Scenarios name images the world creates: "@app-image:-1" is the newest app AMI, "@base-image:0" the oldest."""
    if isinstance(value, dict):
        return {k: resolve(v, world) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, world) for v in value]
    if isinstance(value, str) and value.startswith(("@app-image:", "@base-image:")):
        kind, index = value[1:].split(":")
        return (world.app_images if kind == "app-image" else world.base_images)[int(index)]
    return value


def run(scenario: dict[str, Any], asl: str | None = None) -> Result:
    """Run one scenario in a fresh emulated account; nothing leaves this process.

    `asl` replaces statemachine/deploy.asl.json (the benchmark's poll-loop baseline); it uses the same
    placeholders and is substituted the same way.
    """
    from moto import mock_aws

    # moto's interpreter logs every failed state with its whole parse tree: the timeline says it better.
    logging.getLogger("moto.stepfunctions").setLevel(logging.CRITICAL)
    # A step that emits no metric makes Powertools warn on every invocation; the timeline is the report.
    warnings.filterwarnings("ignore", message="No application metrics to publish")

    from rehearsal import moto_seam
    from rehearsal import world as world_module
    from rehearsal.emulated_aws import REGION, EmulatedAws

    env = {
        "AWS_ACCESS_KEY_ID": "rehearsal",
        "AWS_SECRET_ACCESS_KEY": "rehearsal",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "MOTO_EC2_LOAD_DEFAULT_AMIS": "false",
        "POWERTOOLS_SERVICE_NAME": "web-app",
        "POWERTOOLS_METRICS_NAMESPACE": "ImmutableAmiPipeline",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "INFO",
    }
    wall_start = time.time()
    saved_env = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    events: list[Event] = []
    try:
        with mock_aws(config={"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}):
            import boto3

            world = world_module.build(scenario)
            saved_env.update({k: os.environ.get(k) for k in world.env})
            os.environ.update(world.env)
            clock = SimClock()
            queue = EventQueue()
            activity = Activity(queue)
            started = datetime.fromtimestamp(time.time(), UTC)

            def sim_datetime() -> datetime:
                return started + timedelta(seconds=clock.now())

            emulated = EmulatedAws(
                scenario,
                world.builder_instance_id,
                lambda text: events.append(Event(time.time(), text)),
                sim_now=clock.now,
                touch=activity.touch,
                sim_datetime=sim_datetime,
            )
            saved_modules = {name: m for name, m in sys.modules.items() if name.split(".")[0] in STEPS}
            emulated.install()
            try:
                dispatcher = Dispatcher(scenario, events, activity)
                dispatcher.load()
                # The blue-green steps read time through shared.clock: give them the simulated time.
                shared_clock: Any = importlib.import_module("shared.clock")
                real_now = shared_clock.now
                shared_clock.now = sim_datetime
                dispatcher.after["register_wait"] = _relay_completion(
                    dispatcher, emulated, clock, scenario, events, queue
                )
                release_after = scenario.get("foreignLockReleasedAfterAttempts")
                if release_after is not None:
                    dispatcher.before["lock"] = _foreign_lock_release(int(release_after), emulated, events)
                if scenario.get("alarmDuringSoak"):
                    dispatcher.after["check_green_group"] = _alarm_during_soak(
                        str(scenario["alarmDuringSoak"]), emulated, events
                    )
                sfn = boto3.client("stepfunctions", region_name=REGION)
                machine = sfn.create_state_machine(
                    name="web-app-deploy",
                    definition=definition(scenario.get("settings", {}), world.topic_arn, asl),
                    roleArn="arn:aws:iam::123456789012:role/rehearsal",
                )["stateMachineArn"]
                initial_images = set(world.app_images + world.base_images)
                emulated.counting = True
                with moto_seam.install(dispatcher.invoke, clock.advance, activity.take_timeout):
                    execution = sfn.start_execution(
                        stateMachineArn=machine,
                        name=f"rehearsal-{scenario['name']}"[:80],
                        input=json.dumps(resolve(scenario["input"], world)),
                    )["executionArn"]
                    description, notifications = _drive(
                        sfn,
                        boto3.client("sqs", region_name=REGION),
                        world.queue_url,
                        execution,
                        scenario,
                        events,
                        clock,
                        deliver=_deliverer(dispatcher, emulated, clock, queue, activity),
                    )
                emulated.counting = False
                history = _history(sfn, execution)
                return _collect(
                    scenario,
                    world,
                    emulated,
                    dispatcher,
                    clock,
                    description,
                    notifications,
                    history,
                    events,
                    initial_images,
                    wall_start,
                    execution,
                )
            finally:
                emulated.uninstall()
                if "real_now" in locals():
                    shared_clock.now = real_now
                for name in [m for m in sys.modules if m.split(".")[0] in STEPS]:
                    del sys.modules[name]
                sys.modules.update(saved_modules)  # whoever imported the handlers before keeps the same modules
    finally:
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _foreign_lock_release(after: int, emulated: Any, events: list[Event]) -> Any:
    """The other deployment finishes and releases its lock after `after` acquire attempts of ours."""
    import boto3

    def release(event: dict[str, Any], attempt: int) -> None:
        if event.get("action") != "acquire" or attempt <= after:
            return
        dynamodb = boto3.client("dynamodb")
        emulated.counting = False
        try:
            for item in dynamodb.scan(TableName="web-app-locks")["Items"]:
                if item["holder"]["S"] != event["executionId"]:
                    dynamodb.delete_item(TableName="web-app-locks", Key={"target": item["target"]})
                    events.append(
                        Event(time.time(), f"the other deployment released its lock on {item['target']['S']}")
                    )
        finally:
            emulated.counting = True

    return release


def _alarm_during_soak(alarm: str, emulated: Any, events: list[Event]) -> Any:
    """The alarm goes off while green soaks (at its first soaking check): green must be given up."""
    import boto3

    def fire(event: dict[str, Any], result: dict[str, Any]) -> None:
        if result.get("verdict") != "Soaking":
            return
        emulated.counting = False
        try:
            boto3.client("cloudwatch").set_alarm_state(
                AlarmName=alarm, StateValue="ALARM", StateReason="rehearsal: 5XX from the green instances"
            )
        finally:
            emulated.counting = True
        events.append(Event(time.time(), f"alarm {alarm} went to ALARM while green soaked"))

    return fire


def _deliverer(dispatcher: Dispatcher, emulated: Any, clock: SimClock, queue: EventQueue, activity: Activity) -> Any:
    """Deliver the next due AWS event once the workflow has gone quiet (every branch is waiting)."""

    def deliver() -> None:
        if not len(queue) or activity.quiet_for() < QUIET_SECONDS:
            return
        due = queue.pop()
        if due is None:
            return
        at, kind, resource_id, status = due
        clock.advance(max(0.0, at - clock.now()))
        dispatcher.invoke(FUNCTION_PREFIX + "relay_event", json.dumps(emulated.event(kind, resource_id, status)))

    return deliver


def _drive(
    sfn: Any,
    sqs: Any,
    queue_url: str,
    execution: str,
    scenario: dict[str, Any],
    events: list[Event],
    clock: SimClock,
    deliver: Any = lambda: None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    approvals = dict(scenario.get("approvals", {}))
    notifications: list[dict[str, Any]] = []
    wall_timeout = float(scenario.get("wallTimeoutSeconds", RUN_TIMEOUT_SECONDS))
    deadline = time.time() + wall_timeout
    drained = False
    while True:
        deliver()
        description = sfn.describe_execution(executionArn=execution)
        for message in sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            body = json.loads(message["Body"])
            if body.get("event") == "ApprovalRequested":
                notifications.append({"event": "ApprovalRequested", "stage": body["stage"]})
                decision = approvals.get(body["stage"], "approve")
                if body["stage"] in scenario.get("lockTakenDuringApproval", []):
                    _lock_taken_meanwhile(body["stage"], execution, events)
                clock.advance(float(scenario.get("settings", {}).get("approvalDelaySeconds", 600)))
                events.append(Event(time.time(), f"approval requested for stage {body['stage']}: {decision}d"))
                if decision == "approve":
                    sfn.send_task_success(taskToken=body["taskToken"], output="{}")
                else:
                    sfn.send_task_failure(
                        taskToken=body["taskToken"], error="Rejected", cause=f"stage {body['stage']} rejected"
                    )
            else:
                notifications.append(body)
                events.append(Event(time.time(), f"notification: {body.get('event')}"))
        if description["status"] != "RUNNING":
            if drained:
                return description, notifications
            drained = True  # one more pass: the final notification is already in the queue
            continue
        if time.time() > deadline:
            sfn.stop_execution(
                executionArn=execution, error="RehearsalTimeout", cause="the rehearsal did not finish in time"
            )
            raise RuntimeError(
                f"scenario {scenario['name']} still running after {wall_timeout:.0f}s: {description['status']}"
            )
        time.sleep(0.01)


def _lock_taken_meanwhile(stage: str, execution: str, events: list[Event]) -> None:
    """While the stage waits for approval, our locks on its targets expire and another deployment takes them."""
    import boto3

    dynamodb = boto3.client("dynamodb")
    config = json.loads(os.environ["DEPLOY_CONFIG"])
    groups = [t["autoScalingGroupName"] for s in config["stages"] if s["name"] == stage for t in s["targets"]]
    other = execution.rsplit(":", 1)[0] + ":a-later-push"
    for group in groups:
        dynamodb.put_item(
            TableName="web-app-locks",
            Item={"target": {"S": group}, "holder": {"S": other}, "expiresAt": {"N": str(int(time.time()) + 3600)}},
        )
    events.append(Event(time.time(), f"our locks on {', '.join(groups)} expired; {other.rsplit(':', 1)[-1]} took them"))


def _history(sfn: Any, execution: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"executionArn": execution, "maxResults": 1000}
    while True:
        page = sfn.get_execution_history(**kwargs)
        events.extend(page["events"])
        if not page.get("nextToken"):
            return events
        kwargs["nextToken"] = page["nextToken"]


def _collect(
    scenario: dict[str, Any],
    world: Any,
    emulated: Any,
    dispatcher: Dispatcher,
    clock: SimClock,
    description: dict[str, Any],
    notifications: list[dict[str, Any]],
    history: list[dict[str, Any]],
    events: list[Event],
    initial_images: set[str],
    wall_start: float,
    execution: str,
) -> Result:
    import boto3

    from rehearsal.world import groups_of

    ec2 = boto3.client("ec2")
    remaining = {
        i["ImageId"] for page in ec2.get_paginator("describe_images").paginate(Owners=["self"]) for i in page["Images"]
    }
    launch_templates = {}
    for group, template_id in world.templates.items():
        default = ec2.describe_launch_template_versions(LaunchTemplateId=template_id, Versions=["$Default"])[
            "LaunchTemplateVersions"
        ][0]
        launch_templates[template_id] = {
            "group": group,
            "defaultVersion": default["VersionNumber"],
            "amiId": default["LaunchTemplateData"].get("ImageId"),
        }
    items = boto3.client("dynamodb").scan(TableName="web-app-locks")["Items"]
    held = [i["target"]["S"] for i in items if i.get("holder", {}).get("S") == execution]
    others = [i["target"]["S"] for i in items if i.get("holder", {}).get("S") != execution]

    violations = []
    for template_id, lt in launch_templates.items():
        if lt["amiId"] not in remaining:
            violations.append(
                f"{template_id} default version {lt['defaultVersion']} points to missing AMI {lt['amiId']}"
            )
    for template_id, versions in emulated.kept_versions().items():
        for number, image_id in versions:
            if image_id and image_id not in remaining and image_id in initial_images | set(emulated_amis(emulated)):
                violations.append(f"{template_id} version {number} references deleted AMI {image_id}")
    for reservation in ec2.describe_instances()["Reservations"]:
        for instance in reservation["Instances"]:
            if (
                instance["State"]["Name"] != "terminated"
                and instance["ImageId"] not in remaining
                and instance["ImageId"] in initial_images
            ):
                violations.append(f"instance {instance['InstanceId']} runs deleted AMI {instance['ImageId']}")
    if held:
        violations.append(f"lock still held on {held}")
    groups = groups_of(world.target_groups)
    violations.extend(_blue_green_violations(world, groups, emulated))
    terminal = [n for n in notifications if n.get("event") in TERMINAL_EVENTS]
    expected = "DeploymentSucceeded" if description["status"] == "SUCCEEDED" else None
    if len(terminal) != 1:
        violations.append(f"expected exactly one outcome notification, got {[n.get('event') for n in terminal]}")
    elif (expected and terminal[0]["event"] != expected) or (
        not expected and terminal[0]["event"] == "DeploymentSucceeded"
    ):
        violations.append(f"outcome notification {terminal[0]['event']} does not match status {description['status']}")

    timeline = _timeline(history, events, clock)
    return Result(
        scenario=scenario["name"],
        status=description["status"],
        error=description.get("error"),
        cause=description.get("cause"),
        transitions=sum(1 for e in history if e["type"].endswith("StateEntered")),
        history_events=len(history),
        lambda_invocations=sum(dispatcher.invocations.values()),
        api_calls=dict(sorted(emulated.api_calls.items())),
        launch_templates=launch_templates,
        images_kept=sorted(i for i in remaining if i in initial_images or i in emulated_amis(emulated)),
        images_pruned=sorted(i for i in initial_images | set(emulated_amis(emulated)) if i not in remaining),
        snapshots_deleted=sorted(emulated.snapshots_deleted),
        lock="held" if held else "released",
        notifications=[
            {
                "event": n.get("event"),
                **({"error": n["error"].get("Error")} if isinstance(n.get("error"), dict) else {}),
            }
            for n in notifications
        ],
        invariant_violations=violations,
        simulated_seconds=clock.now(),
        wall_seconds=time.time() - wall_start,
        timeline=timeline,
        invocations=dict(dispatcher.invocations),
        builds=[b.pipeline for b in emulated.builds.values()],
        world_images={"app": list(world.app_images), "base": list(world.base_images)},
        other_locks=others,
        lags=sorted(emulated.lags.values()),
        groups=groups,
        groups_deleted=sorted(n for n in world.initial_groups if n not in groups),
    )


def _blue_green_violations(world: Any, groups: dict[str, dict[str, Any]], emulated: Any) -> list[str]:
    """Per blue-green target: exactly one healthy group serves; no green is left; the seed group and every
    group still within retention exist; every group's launch template version (hence its AMI) still exists."""
    violations = []
    keep = int(world.config.get("retention", {}).get("keepGroups", 2))
    versions = emulated.kept_versions()
    for seed in world.target_groups:
        mine = {n: g for n, g in groups.items() if g["target"] == seed}
        serving = [n for n, g in mine.items() if g["inTargetGroup"]]
        if len(serving) != 1:
            violations.append(f"{seed}: its target group is served by {serving}, not by exactly one group")
        else:
            live = mine[serving[0]]
            if live["desired"] == 0 or live["healthyTargets"] < live["desired"]:
                violations.append(
                    f"{seed}: {serving[0]} serves with {live['healthyTargets']}/{live['desired']} healthy"
                )
            if not live["role"].startswith("live"):
                violations.append(f"{seed}: {serving[0]} serves but its role is {live['role']}")
        if seed not in groups:
            violations.append(f"{seed}: the seed group was deleted")
        violations.extend(f"{seed}: green group {n} was left behind" for n, g in mine.items() if g["role"] == "green")
        deleted = [n for n, g in world.initial_groups.items() if g["target"] == seed and n not in groups]
        retained = [n for n, g in mine.items() if g["role"] == "retained"]
        for name in deleted:
            if world.initial_groups[name]["role"] != "retained" or len(retained) < keep:
                violations.append(f"{seed}: {name} ({world.initial_groups[name]['role']}) was deleted within retention")
        template_id = world.templates[seed]
        numbers = {str(n) for n, _ in versions.get(template_id, [])}
        for name, group in mine.items():
            if group["launchTemplateVersion"] not in numbers:
                violations.append(f"{name} uses deleted version {group['launchTemplateVersion']} of {template_id}")
    return violations


def emulated_amis(emulated: Any) -> list[str]:
    return [b.ami_id for b in emulated.builds.values() if b.ami_id]


def _timeline(
    history: list[dict[str, Any]], events: list[Event], clock: SimClock
) -> list[tuple[float, str, str, list[str]]]:
    """States entered, each with what happened in AWS until the next state."""
    entries: list[tuple[float, str, str, list[str]]] = []
    # History timestamps are coarser than the clock: a state entered right after a Wait must count
    # the Wait's simulated seconds, the Wait itself must not.
    states = [
        (e["timestamp"].timestamp() + (0 if e["type"] == "WaitStateEntered" else 0.002), e)
        for e in history
        if e["type"].endswith("StateEntered")
    ]
    pending = sorted(events, key=lambda ev: ev.real)
    index = 0
    for position, (ts, event) in enumerate(states):
        until = states[position + 1][0] if position + 1 < len(states) else float("inf")
        notes = []
        while index < len(pending) and pending[index].real < until:
            notes.append(pending[index].text)
            index += 1
        kind = event["type"].removesuffix("StateEntered")
        entries.append((clock.at(ts), event["stateEnteredEventDetails"]["name"], kind, notes))
    tail = [ev.text for ev in pending[index:]]
    if tail and entries:
        entries[-1][3].extend(tail)
    return entries
