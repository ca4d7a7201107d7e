"""Run one scenario on the synthesized template: build the configured world, run the deployed ASL in moto's
interpreter with the template's functions, answer approvals, then read back what changed and check the
invariants (outcomes, and permission: no call the roles would deny)."""

from __future__ import annotations

import functools
import importlib
import json
import logging
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rehearsal import artifact as artifacts
from rehearsal import invariants
from rehearsal.artifact import Artifact, ArtifactError
from rehearsal.clock import Activity, Event, EventQueue, SimClock
from rehearsal.invariants import collect, history_of
from rehearsal.result import Result
from rehearsal.scenarios import Roles, ScenarioError, changes, missing_shapes, overlaid
from rehearsal.timeline import Invocations

ACCOUNT_ENV = {  # the emulated account: fake credentials, moto without its default AMIs
    "AWS_ACCESS_KEY_ID": "rehearsal",
    "AWS_SECRET_ACCESS_KEY": "rehearsal",
    "AWS_SESSION_TOKEN": "rehearsal",
    "MOTO_EC2_LOAD_DEFAULT_AMIS": "false",
    # The functions' Powertools would send X-Ray segments; Lambda's active tracing stands in for them.
    "POWERTOOLS_TRACE_DISABLED": "true",
}


@dataclass(frozen=True)
class Target:
    """What to rehearse: a configuration file to synthesize, or an already synthesized template."""

    config: Path | None = None
    template: Path | None = None

    def artifact(self) -> Artifact:
        if self.template is not None:
            return artifacts.load(self.template)
        return artifacts.synthesize(self.config)

    def overlaid(self, scenario: dict[str, Any], overlay: dict[str, Any]) -> Artifact:
        """The artifact of this configuration with the scenario's changes (synthesized, cached by content)."""
        if self.template is not None:
            raise ScenarioError(
                f"scenario {scenario['name']} changes the configuration ({', '.join(overlay)}), which a template "
                "cannot show; rehearse it with --config"
            )
        from stacks.config import strip_json_comments

        path = self.config or artifacts.configured_file()
        return artifacts.synthesize(overlaid(json.loads(strip_json_comments(path.read_text())), overlay))


def definition(artifact: Artifact, resolver: Any, asl: str | None = None) -> str:
    """The ASL with the template's DefinitionSubstitutions, resolved in the emulated account (as CloudFormation
    substitutes them at deploy time); `asl` replaces the deployed definition (the benchmark's baseline loop)."""
    text = artifact.definition if asl is None else asl
    for key, value in resolver.resolve(artifact.substitutions(), "DefinitionSubstitutions").items():
        text = text.replace("${" + key + "}", str(value))
    if "${" in text:
        raise ArtifactError(f"placeholder without a substitution in the definition: {text[text.index('${') :][:60]}")
    return text


def prepare(
    scenario: dict[str, Any], target: Target | None = None, artifact: Artifact | None = None
) -> tuple[Artifact, dict[str, Any], str | None]:
    """The artifact the scenario runs on, the scenario with its roles resolved, and a note when overlaid."""
    given = artifact is not None
    target = target or Target()
    artifact = artifact or target.artifact()
    note = None
    missing = missing_shapes(scenario, artifact.deploy_config)
    overlay = changes(scenario, missing)
    if overlay and given:
        raise ScenarioError(
            f"scenario {scenario['name']} changes the configuration ({', '.join(overlay)}): "
            "it cannot run on a given artifact"
        )
    if overlay:
        artifact = target.overlaid(scenario, overlay)
        why = [f"the configuration has no {', '.join(missing)} stage"] if missing else []
        why += [f"the scenario sets {', '.join(scenario['configure'])}"] if scenario.get("configure") else []
        note = f"{'; '.join(why)}: rehearsed with {', '.join(sorted(overlay))} changed"
    roles = Roles(artifact.deploy_config)
    keep = {k: scenario[k] for k in ("name", "description", "overlay", "configure") if k in scenario}
    return artifact, {**roles.resolve({k: v for k, v in scenario.items() if k not in keep}), **keep}, note


def run(
    scenario: dict[str, Any],
    target: Target | None = None,
    *,
    artifact: Artifact | None = None,
    asl: str | None = None,
) -> Result:
    """Run one scenario in a fresh emulated account; nothing leaves this process."""
    from moto import mock_aws

    # moto's interpreter logs every failed state with its whole parse tree: the timeline says it better.
    logging.getLogger("moto.stepfunctions").setLevel(logging.CRITICAL)
    # A step that emits no metric makes Powertools warn on every invocation; the timeline is the report.
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    artifact, scenario, note = prepare(scenario, target, artifact)
    wall_start = time.time()
    saved_env = dict(os.environ)
    from rehearsal.intrinsics import Account, Resolver

    resolver = Resolver(artifact, Account())
    os.environ.update({**ACCOUNT_ENV, "AWS_DEFAULT_REGION": resolver.account.region})
    try:
        with mock_aws(config={"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}):
            result = _run(scenario, artifact, resolver, asl, wall_start)
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
    result.note = note
    return result


def _run(scenario: dict[str, Any], artifact: Artifact, resolver: Any, asl: str | None, wall_start: float) -> Result:
    import boto3

    from rehearsal import limits, moto_seam, perturbations, timing
    from rehearsal import world as world_module
    from rehearsal.contract import Contract
    from rehearsal.dispatch import Dispatcher
    from rehearsal.drive import approver, drive
    from rehearsal.emulated_aws import EmulatedAws
    from rehearsal.iam.requests import MotoLookup, Where

    region = resolver.account.region
    events: list[Event] = []
    world = world_module.build(resolver, scenario)
    clock, queue = SimClock(), EventQueue()
    activity = Activity(queue)
    started = datetime.fromtimestamp(time.time(), UTC)

    def sim_datetime() -> datetime:
        return started + timedelta(seconds=clock.now())

    account = resolver.account
    contract = Contract(artifact, resolver, MotoLookup(Where(account.partition, region, account.account)))
    emulated = EmulatedAws(
        scenario,
        world.builder_instance_id,
        lambda text: events.append(Event(time.time(), text)),
        sim_now=clock.now,
        touch=activity.touch,
        sim_datetime=sim_datetime,
        application=world.application,
        pipelines=artifacts.pipelines_of(artifact, resolver),
        image_builder=artifacts.image_builder_of(artifact, resolver),
        authorize=contract.check,
    )
    emulated.install()
    shared_clock: Any = None
    # What a function sees besides its template variables and Lambda's: the fake credentials and moto's own
    # settings, never the caller's shell (a variable the template lacks must not pass because the shell has it).
    base = {k: v for k, v in os.environ.items() if k in ACCOUNT_ENV or k.startswith("MOTO_")}
    dispatcher = Dispatcher(resolver, contract, scenario, events, activity, base_environment=base)
    try:
        dispatcher.load()
        # The blue-green steps read time through shared.clock: give them the simulated time.
        shared_clock = importlib.import_module("shared.clock")
        real_now, real_sleep = shared_clock.now, shared_clock.sleep
        shared_clock.now = sim_datetime
        # Pacing (prune) and botocore's retry backoff sleep on the simulated clock, never in real time.
        shared_clock.sleep = emulated.sim_sleep = dispatcher.sleeping(clock.advance)
        relay = perturbations.relay_completion(dispatcher, emulated, clock, scenario, events, queue)
        issued: set[str] = set()  # every task token register_wait was given: none may reach the topic
        published: list[str] = []

        def after_register(event: dict[str, Any], result: dict[str, Any]) -> None:
            issued.add(str(event.get("taskToken") or ""))
            relay(event, result)

        dispatcher.after["register_wait"] = after_register
        if scenario.get("foreignLockReleasedAfterAttempts") is not None:
            dispatcher.before["lock"] = perturbations.foreign_lock_release(
                int(scenario["foreignLockReleasedAfterAttempts"]), emulated, events, world.lock_table
            )
        if scenario.get("alarmDuringSoak"):
            dispatcher.after["check_green_group"] = perturbations.alarm_during_soak(
                str(scenario["alarmDuringSoak"]), emulated, events
            )
        sfn = boto3.client("stepfunctions", region_name=region)
        deployed = definition(artifact, resolver, asl)
        properties = artifact.resources[artifact.state_machine]["Properties"]
        machine = sfn.create_state_machine(
            name=resolver.physical_name(artifact.state_machine, 80),
            definition=deployed,
            roleArn=resolver.resolve(properties["RoleArn"]),
        )["stateMachineArn"]
        initial_images = set(world.app_images + world.base_images)
        emulated.counting = True

        invocations = Invocations()

        def invoke(function: str, payload: Any) -> dict[str, Any]:
            # What happens during the invocation is its state's (the timeline puts it under that state).
            with invocations.during(function, payload):
                return dispatcher.invoke(function, payload, caller=contract.state_machine)

        recorder = timing.Recorder(
            step_of=_step_of(dispatcher),
            sim_now=clock.now,
            sim_epoch=lambda: sim_datetime().timestamp(),
            lock_of=_lock_reader(account, world.lock_table),
        )
        recorded = recorder.wrap(invoke)

        name = f"rehearsal-{scenario['name']}"[:80]
        more: list[perturbations.SecondExecution] = []
        with moto_seam.install(recorded, clock.advance, activity.take_timeout, now=clock.now):
            execution = sfn.start_execution(
                stateMachineArn=machine,
                name=name,
                input=json.dumps(world_module.resolve_images(scenario["input"], world)),
            )["executionArn"]
            also_specs = scenario.get("alsoStart") or []
            for number, also in enumerate(also_specs if isinstance(also_specs, list) else [also_specs]):
                previous = more[-1] if more else None
                watched: str | Callable[[], str | None] = execution
                if also.get("after") == "previous" and previous is not None:
                    watched = functools.partial(getattr, previous, "execution")
                more.append(
                    perturbations.SecondExecution(
                        sfn,
                        machine,
                        watched,
                        also,
                        world_module.resolve_images(also["input"], world),
                        f"{name[:72]}-also{number + 1 if number else ''}",
                        activity,
                        clock,
                        events,
                    )
                )
                if watched is not execution and previous is not None:
                    previous.successor = more[-1]
            stopper = (
                perturbations.StopWhen(sfn, execution, scenario["stopWhen"], events)
                if scenario.get("stopWhen")
                else None
            )

            def start_more() -> str | None:
                started = [arn for arn in (m.poll() for m in more) if arn is not None]
                # The operator stops the first once every other execution the scenario starts is where it waits
                # (a push stopped before the next one queued would show no queue at all).
                if stopper is not None and all(m.execution is not None and not m.held for m in more):
                    stopper.poll()
                return started[0] if started else None

            try:
                descriptions, notifications = drive(
                    sfn,
                    boto3.client("sqs", region_name=region),
                    world.queue_url,
                    execution,
                    scenario,
                    events,
                    clock,
                    deliver=perturbations.deliverer(dispatcher, emulated, clock, queue, activity),
                    unanswered=activity.unanswered_token,
                    ended=lambda description: perturbations.execution_ended(dispatcher, machine, description, events),
                    lock_taken=lambda stage: perturbations.lock_taken_meanwhile(
                        stage, execution, events, world, lambda: sim_datetime().timestamp()
                    ),
                    start_more=start_more,
                    answer=approver(region, world.lock_table, emulated, events),
                    published=published,
                )
            finally:
                for m in more:
                    m.release()
        emulated.counting = False
        description = descriptions[0]
        history = history_of(sfn, execution)
        started_by = {m.execution: m for m in more if m.execution is not None}
        others = [
            {
                "execution": other["executionArn"],
                "description": other,
                "history": history_of(sfn, other["executionArn"]),
                "startedAtSeconds": round(started_by[other["executionArn"]].started_at or 0.0, 1),
                "when": started_by[other["executionArn"]].when,
            }
            for other in descriptions[1:]
        ]
        result = collect(
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
            also=others,
        )
        if more or stopper is not None:
            script = [
                f"alsoStart: an execution never started: {m.never or 'not reached'}"
                for m in more
                if m.never is not None or m.execution is None
            ]
            script += [f"alsoStart: {m.late}" for m in more if m.late is not None]
            if stopper is not None and not stopper.stopped:
                script.append(f"stopWhen: the execution never entered {stopper.state}")
            result.check(invariants.HARNESS, script)
        # The bounds are the template's, also when the benchmark runs its baseline loop instead of the definition.
        # Each execution's waits are its own: the record is split by the execution each call names.
        settings = timing.Settings.of(definition(artifact, resolver), artifact.deploy_config)
        histories = {execution: history, **{o["execution"]: o["history"] for o in others}}
        result.bounds = [
            entry
            for arn, its_history in histories.items()
            for entry in timing.bounds(
                [c for c in recorder.calls if c.payload.get("executionId", execution) == arn],
                settings,
                timing.approvals_of(its_history, clock.at),
            )
        ]
        result.lock_margins = timing.lock_margins(recorder.margins)
        if asl is None:  # the benchmark's baseline loop takes no lock and keeps no bound: it is not the artifact
            result.check(invariants.BOUNDS, timing.violations(result.bounds, recorder.margins))
        result.limits = limits.observe(history)  # history events and the largest payload against the quotas
        over = limits.violations(result.limits)
        for other in others:
            name_of = other["execution"].rsplit(":", 1)[-1]
            over += [f"{name_of}: {v}" for v in limits.violations(limits.observe(other["history"]))]
        result.check(invariants.QUOTAS, over)
        result.check(invariants.TOKENS, invariants.task_token_violations(published, issued))
        # A partial denial (EC2 keeping a snapshot DeregisterImage may not delete) is a denial all the same: the
        # call "succeeded", but the role could not do what the step meant it to.
        result.access_denied = [*contract.denied, *contract.partially_denied]
        result.observed_actions = sorted({f"{role} {action}" for role, action in contract.observed})
        result.authorizations = list(contract.allowed)
        result.targets = world.targets()
        result.expect = dict(scenario.get("expect", {}))
        result.config = dict(world.config)
        expected_denials = scenario.get("expect", {}).get("accessDenied", [])
        result.check(
            invariants.IAM,
            [f"IAM contract: {error}" for error in contract.errors]
            + [
                f"denied by IAM: {denied['step']} may not {denied['action']} on {denied['resource']}"
                for denied in result.access_denied
                if denied["action"] not in expected_denials
            ],
        )
        return result
    finally:
        emulated.uninstall()
        if shared_clock is not None:
            shared_clock.now, shared_clock.sleep = real_now, real_sleep
        dispatcher.unload()


def _step_of(dispatcher: Any) -> Any:
    """Function name or ARN (as the state machine names it) → its step."""
    by_arn = {arn: step for step, arn in dispatcher.by_step.items()}

    def step_of(function: str) -> str:
        arn = function.removesuffix(":$LATEST")
        return by_arn.get(arn) or next((s for a, s in by_arn.items() if a.endswith(f":function:{arn}")), arn)

    return step_of


def _lock_reader(account: Any, table: str) -> Any:
    """The lock item of a group, read from moto's table directly: the harness looking, not a call of the workflow."""
    from moto.dynamodb.models import dynamodb_backends

    def lock_of(group: str) -> dict[str, Any] | None:
        item = dynamodb_backends[account.account][account.region].get_item(table, {"target": {"S": group}})
        if item is None:
            return None
        attributes = item.to_json()["Attributes"]
        return {"holder": attributes.get("holder", {}).get("S"), "expiresAt": int(attributes["expiresAt"]["N"])}

    return lock_of
