"""The worst case a configuration allows: how long each part of a deployment may take, and how many history
events one execution may write. `cdk synth` refuses a configuration whose lock could expire while a stage still
works on its groups, or whose execution could reach Step Functions' history cap.

Time, per bounded wait (statemachine/deploy.asl.json checks each bound at every resumption, so a wait ends at
most one of its poll intervals after its bound):
- a bake: `build.timeoutMinutes`, checked after every Image Builder event or `build.fallbackPollSeconds`;
  a base rebuild, and the first deployment on a fresh account, bake twice (base, then app) and renew the
  lock in between;
- a rolling wave: the refresh (`refresh.timeoutMinutes`, checked every `refresh.pollIntervalSeconds` or
  `refresh.fallbackPollSeconds`), then, if it fails, the rollback under the same bound;
- a blue-green wave: green's health and soak (`blueGreen.healthTimeoutMinutes` + `blueGreen.soakSeconds`), the
  drain of blue (at most Elastic Load Balancing's largest deregistration delay), then, if the shift fails, blue's
  restoration (`blueGreen.healthTimeoutMinutes`);
- every step on the way at its Task timeout (the ASL's TimeoutSeconds), once.

History events, as Step Functions writes them (one per state entered and exited, and per task scheduled,
started, submitted and ended: "Step Functions history events", HistoryEventType in the API Reference), with the
same walk. Retries add events too (three per attempt); the budget leaves the other fifth of the cap for them.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stacks.config import PipelineConfig

# Step Functions quotas ("Quotas related to state machine executions"): 25,000 events in an execution's history;
# at the cap the execution fails and no Catch runs. The worst case may use 80 % of it.
HISTORY_CAP = 25_000
HISTORY_BUDGET = 20_000
# Elastic Load Balancing, "Target groups for your Application Load Balancers": deregistration_delay.timeout_seconds
# is 0-3600 seconds. Blue drains for at most that long.
MAX_DEREGISTRATION_DELAY_SECONDS = 3600

# Events per state, by type (Step Functions Developer Guide, "Viewing execution history"; HistoryEvent types).
TASK = 5  # TaskStateEntered, TaskScheduled, TaskStarted, TaskSucceeded, TaskStateExited
CALLBACK_TASK = 6  # ... and TaskSubmitted (waitForTaskToken), ending TaskSucceeded or TaskTimedOut
STATE = 2  # Pass, Choice, Wait, Fail: entered, exited
MAP = 4  # MapStateEntered, MapStateStarted, MapStateSucceeded, MapStateExited
ITERATION = 2  # MapIterationStarted, MapIterationSucceeded

# A queued push (statemachine/deploy.asl.json, JoinQueue) is woken when its targets are released; it also looks
# again every QUEUE_CHECK_SECONDS in case a wake was lost (wakes are our own SendTaskSuccess calls, not best-effort
# events: the hourly look only covers a lock that expired without being released). Each look or wake is one pass
# through AcquireLock, LockAcquired and JoinQueue, and the ASL counts them: twice the looks lock.queueHours needs,
# so wakes that lose the race to another queued deployment do not end the wait early.
QUEUE_CHECK_SECONDS = 3600


def queue_attempts(config: PipelineConfig) -> int:
    return 2 * max(1, math.ceil(config.lock.queue_hours * 3600 / QUEUE_CHECK_SECONDS))


# The Task timeouts of the steps (the ASL's TimeoutSeconds), as the worst case counts them.
STEP_SECONDS = {"lambda": 60, "publish": 120, "rollback": 120, "blueGreen": 120}


@dataclass(frozen=True)
class Wave:
    seconds: int
    events: int


def _polls(bound_seconds: int, interval_seconds: int) -> int:
    """Checks of a wait bounded by `bound_seconds` and checked every `interval_seconds`: the first at once."""
    return math.ceil(bound_seconds / max(interval_seconds, 1)) + 1


def bake(config: PipelineConfig) -> Wave:
    """One bake: start, then a check at every fallback poll until the bound (an event only comes earlier), each
    check followed by its verdict and the pass that names the build to wait on next; at the bound the cancel.
    A rebuild that bakes one image per commit waits in the same loop: its checks are bounded by the same time."""
    build = config.build
    bound = build.timeout_minutes * 60
    checks = _polls(bound, build.fallback_poll_seconds)
    return Wave(
        seconds=bound + build.fallback_poll_seconds + 2 * STEP_SECONDS["lambda"],
        events=2 * TASK + checks * (CALLBACK_TASK + TASK + 2 * STATE) + 3 * STATE,
    )


def rolling_target(config: PipelineConfig) -> Wave:
    """Publish, refresh to its bound (the worst of the two poll loops), then a rollback to the same bound."""
    refresh = config.refresh
    bound = refresh.timeout_minutes * 60
    slowest = max(refresh.poll_interval_seconds, refresh.fallback_poll_seconds)
    health_polls = _polls(bound, refresh.poll_interval_seconds) * (STATE + TASK + STATE)
    event_polls = (_polls(bound, refresh.fallback_poll_seconds) + len(refresh.checkpoint_percentages)) * (
        CALLBACK_TASK + TASK + STATE
    )
    rollback_polls = _polls(bound, refresh.fallback_poll_seconds) * (CALLBACK_TASK + TASK + STATE)
    return Wave(
        seconds=2 * (bound + slowest) + 2 * STEP_SECONDS["publish"] + 2 * STEP_SECONDS["lambda"],
        events=ITERATION + 2 * TASK + 4 * STATE + max(health_polls, event_polls) + TASK + rollback_polls + 2 * STATE,
    )


def blue_green_target(config: PipelineConfig) -> Wave:
    """Create green, its health and soak, blue's drain, then (a failed shift) blue's restoration."""
    poll = config.refresh.poll_interval_seconds
    health = config.blue_green.health_timeout_minutes * 60
    soak = config.blue_green.soak_seconds
    loop = STATE + TASK + STATE  # Wait, check, Choice
    polls = (_polls(health + soak, poll) + _polls(MAX_DEREGISTRATION_DELAY_SECONDS, poll) + _polls(health, poll)) * loop
    return Wave(
        seconds=health + soak + MAX_DEREGISTRATION_DELAY_SECONDS + health + 3 * poll + 4 * STEP_SECONDS["blueGreen"],
        events=ITERATION + 4 * TASK + 4 * STATE + polls,
    )


def per_target(config: PipelineConfig, strategy: str) -> Wave:
    return blue_green_target(config) if strategy == "blue-green" else rolling_target(config)


def stage_seconds(config: PipelineConfig, stage_index: int) -> int:
    """From the stage's lock renewal to its last wave's end: its waves one after the other, each at its worst."""
    stage = config.stages[stage_index]
    waves = math.ceil(len(stage.targets) / stage.wave_size)
    return STEP_SECONDS["lambda"] + waves * per_target(config, stage.strategy).seconds


def fixed_events(config: PipelineConfig) -> int:
    """Everything but the stages' targets: validate, lock (and its wait or queue), two bakes, prune, unlock, notify."""
    lock_checks = max(1, math.ceil(config.lock.wait_seconds / config.lock.poll_seconds))
    waiting = max(lock_checks * (TASK + 2 * STATE), queue_attempts(config) * (TASK + STATE + CALLBACK_TASK))
    prune_rounds = 10  # prune_images loops in batches; a backlog of tens of thousands of AMIs takes a few rounds
    return (
        3 * STATE
        + TASK
        + waiting
        + 2 * bake(config).events
        + TASK
        + STATE
        + MAP
        + prune_rounds * (TASK + STATE)
        + 2 * TASK
        + STATE
    )


def stage_events(config: PipelineConfig, stage_index: int) -> int:
    stage = config.stages[stage_index]
    waves = math.ceil(len(stage.targets) / stage.wave_size)
    overhead = ITERATION + STATE + CALLBACK_TASK + TASK + 2 * STATE + MAP + waves * (ITERATION + MAP + 4 * STATE)
    return overhead + len(stage.targets) * per_target(config, stage.strategy).events


def history_events(config: PipelineConfig) -> int:
    return fixed_events(config) + sum(stage_events(config, i) for i in range(len(config.stages)))


def check_history_budget(config: PipelineConfig) -> None:
    """Raise with the key path and the largest number of groups that fits when one execution could write more
    than HISTORY_BUDGET events."""
    total = history_events(config)
    if total <= HISTORY_BUDGET:
        return
    used = fixed_events(config)
    for index, stage in enumerate(config.stages):
        events = stage_events(config, index)
        if used + events > HISTORY_BUDGET:
            each = per_target(config, stage.strategy).events
            room = HISTORY_BUDGET - used - (events - len(stage.targets) * each)
            fits = max(0, room // each)
            break
        used += events
    raise ValueError(
        f"stages[{index}].targets: one execution could write {total:,} history events, above the {HISTORY_BUDGET:,} "
        f"this pipeline allows within Step Functions' {HISTORY_CAP:,} per execution (the execution would fail "
        f"without rolling back); stage {stage.name!r} fits at most {fits} {stage.strategy} group(s) after the "
        f"stages before it, at {each:,} events per group at its bounds; raise refresh.pollIntervalSeconds or "
        "refresh.fallbackPollSeconds, lower the timeouts, or configure fewer groups"
    )


def check_lock_outlasts(config: PipelineConfig) -> None:
    """The lock is taken before the bake and renewed before the app bake of a base rebuild and at every stage's
    start: its expiry must outlast a bake and each whole stage at their worst."""
    ttl = config.lock.ttl_minutes * 60
    needed = bake(config).seconds
    if needed > ttl:
        raise ValueError(
            f"lock.ttlMinutes ({config.lock.ttl_minutes}) is shorter than a bake may take ({math.ceil(needed / 60)} "
            "minutes: build.timeoutMinutes plus one build.fallbackPollSeconds and the steps around it); raise "
            f"lock.ttlMinutes to at least {math.ceil(needed / 60)} or lower build.timeoutMinutes"
        )
    for index, stage in enumerate(config.stages):
        needed = stage_seconds(config, index)
        if needed > ttl:
            waves = math.ceil(len(stage.targets) / stage.wave_size)
            what = (
                "green's health timeout and soak, blue's drain and a restoration"
                if stage.strategy == "blue-green"
                else "a refresh and its rollback, each to refresh.timeoutMinutes plus one poll"
            )
            raise ValueError(
                f"lock.ttlMinutes ({config.lock.ttl_minutes}) is shorter than stage {stage.name!r} may take: "
                f"{waves} wave(s) of up to {math.ceil(per_target(config, stage.strategy).seconds / 60)} minutes each "
                f"({what}); raise lock.ttlMinutes to at least {math.ceil(needed / 60)} or deploy more groups per "
                f"wave (stages[{index}].waveSize)"
            )


# Lambda quotas, "Function configuration, deployment, and execution": environment variables are 4 KB "for all
# environment variables associated with the function, in aggregate"
# (https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html). The docs do not say how the
# aggregate is counted: it is taken here as the variables written as JSON, the larger reading.
LAMBDA_ENVIRONMENT_BYTES = 4096
# What a function's other variables (POWERTOOLS_*, the ARNs and names of its resources, APP_RECIPE) may take
# beside DEPLOY_CONFIG: tests/infra measures the largest, start_image_build's, on the resolved template and
# pins that it stays below this.
OTHER_VARIABLES_BYTES = 1280


def check_environment_size(config: PipelineConfig) -> None:
    """Every function carries the deploy configuration (DEPLOY_CONFIG): it must leave room for the rest."""
    size = len(json.dumps({"DEPLOY_CONFIG": config.deploy_config_json()}).encode())
    room = LAMBDA_ENVIRONMENT_BYTES - OTHER_VARIABLES_BYTES
    if size > room:
        raise ValueError(
            f"the deploy configuration the functions receive is {size:,} bytes as an environment variable, and "
            f"Lambda allows {LAMBDA_ENVIRONMENT_BYTES:,} bytes for all of a function's variables, "
            f"{OTHER_VARIABLES_BYTES:,} of which the other variables may need: at most {room:,} bytes. Shorten "
            "group names, or split the stages over two applications"
        )
