"""lock: one deployment per target (safety rule 4), all-or-nothing, with expiry and re-entrant retries."""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator, Mapping
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from lock import logic
from lock.models import LockEnvironment, LockInput, LockOutput
from moto import mock_aws

from shared import clock
from shared.aws.lock_table import LockItem, LockTable, PutOutcome
from shared.aws.task_tokens import TokenDelivery
from shared.config import ConfigurationError, DeployConfig
from shared.environment import load_environment
from shared.errors import InvalidInput
from tests.conftest import REGION, SAMPLE_DEPLOY_CONFIG
from tests.unit.fakes import RecordingStore
from tests.unit.tables import create_coordination_table

CONFIG = DeployConfig.model_validate(SAMPLE_DEPLOY_CONFIG)
TABLE = "web-app-locks"
TTL = 3600
QUEUE_SECONDS = 86400
NOTHING_QUEUED = {"queued": False, "superseded": [], "woken": []}
NOW = 1_750_000_000
ME = "arn:aws:states:eu-west-1:123456789012:execution:deploy:run-1"
OTHER = "arn:aws:states:eu-west-1:123456789012:execution:deploy:run-0"
TEST_STAGE = {
    "name": "test",
    "approval": False,
    "targets": [{"autoScalingGroupName": "web-app-test", "launchTemplateId": "lt-0aaaaaaaaaaaaaaa1"}],
}
PROD_STAGE = {
    "name": "prod",
    "approval": True,
    "targets": [{"autoScalingGroupName": "web-app-prod", "launchTemplateId": "lt-0bbbbbbbbbbbbbbb2"}],
}


class Tokens:
    """SendTaskSuccess/Failure as the lock step calls them, recorded; `closed` tokens answer as closed tasks."""

    def __init__(self, closed: frozenset[str] = frozenset()) -> None:
        self.closed = closed
        self.sent: list[tuple[str, str, str]] = []  # (token, "success" | error, output or cause)

    def send_success(self, task_token: str, output: Mapping[str, Any]) -> TokenDelivery:
        self.sent.append((task_token, "success", json.dumps(dict(output), sort_keys=True)))
        return TokenDelivery(
            delivered=task_token not in self.closed, code="TaskTimedOut" if task_token in self.closed else None
        )

    def send_failure(self, task_token: str, error: str, cause: str) -> TokenDelivery:
        self.sent.append((task_token, error, cause))
        return TokenDelivery(
            delivered=task_token not in self.closed, code="TaskTimedOut" if task_token in self.closed else None
        )


class Clock:
    def __init__(self, now: int = NOW) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        create_coordination_table(client, TABLE)
        yield client


@pytest.fixture
def store(dynamodb: Any) -> RecordingStore:
    return RecordingStore(LockTable(TABLE, dynamodb))


def lock_request(
    action: str = "acquire",
    *,
    execution: str = ME,
    stages: list[dict[str, Any]] | None = None,
    dry_run: bool = False,
    attempt: int = 0,
) -> LockInput:
    return LockInput.model_validate(
        {
            "action": action,
            "executionId": execution,
            "dryRun": dry_run,
            "stages": stages if stages is not None else [TEST_STAGE],
            "attempt": attempt,
        }
    )


def items(dynamodb: Any) -> dict[str, dict[str, str]]:
    """Every lock item as {target: {attribute: value}}."""
    found = dynamodb.scan(TableName=TABLE)["Items"]
    return {i["target"]["S"]: {k: next(iter(v.values())) for k, v in i.items() if k != "target"} for i in found}


def hold(dynamodb: Any, target: str, holder: str, expires_at: int) -> None:
    dynamodb.put_item(
        TableName=TABLE,
        Item={
            "target": {"S": target},
            "holder": {"S": holder},
            "expiresAt": {"N": str(expires_at)},
            "acquiredAt": {"N": str(expires_at - TTL)},
        },
    )


def call(
    request: LockInput, store: logic.QueueStore, tokens: Tokens | None = None, clock: Clock | None = None
) -> LockOutput:
    """The lock logic with this module's TTL and queue bound, on a fixed clock unless one is given."""
    return logic.run(
        request,
        CONFIG,
        store=store,
        tokens=Tokens() if tokens is None else tokens,
        ttl_seconds=TTL,
        queue_seconds=QUEUE_SECONDS,
        clock=Clock() if clock is None else clock,
    )


def run(request: LockInput, store: RecordingStore, clock: Clock | None = None) -> dict[str, Any]:
    return call(request, store, clock=clock).model_dump(by_alias=True, mode="json")


# --- acquire -------------------------------------------------------------------------------------


def test_acquire_free_target_writes_our_lock_with_expiry(store: RecordingStore, dynamodb: Any) -> None:
    # Given no lock on web-app-test
    # When this execution acquires
    output = run(lock_request(), store)
    # Then it holds the lock until now + TTL
    assert output == {
        "action": "acquire",
        "acquired": True,
        "released": False,
        "targets": ["web-app-test"],
        "holder": None,
        "heldUntil": None,
        "attempt": 0,
        **NOTHING_QUEUED,
    }
    assert items(dynamodb) == {"web-app-test": {"holder": ME, "expiresAt": str(NOW + TTL), "acquiredAt": str(NOW)}}


def test_acquire_held_by_another_live_execution_is_refused_and_leaves_nothing_of_ours(
    store: RecordingStore, dynamodb: Any
) -> None:
    # Given another execution holds web-app-test (sorted after web-app-prod) for 10 more minutes
    hold(dynamodb, "web-app-test", OTHER, NOW + 600)
    # When this execution acquires both stages (it takes web-app-prod first, then meets the held lock)
    output = run(lock_request(stages=[TEST_STAGE, PROD_STAGE], attempt=2), store)
    # Then it is refused with the holder and its expiry, the attempt counts up, and web-app-prod is given back
    assert output == {
        "action": "acquire",
        "acquired": False,
        "released": False,
        "targets": ["web-app-prod", "web-app-test"],
        "holder": OTHER,
        "heldUntil": NOW + 600,
        "attempt": 3,
        **NOTHING_QUEUED,
    }
    assert store.calls == [("put", "web-app-prod"), ("put", "web-app-test"), ("delete", "web-app-prod")]
    assert items(dynamodb) == {
        "web-app-test": {"holder": OTHER, "expiresAt": str(NOW + 600), "acquiredAt": str(NOW + 600 - TTL)}
    }


def test_acquire_takes_over_an_expired_lock_of_another_execution(store: RecordingStore, dynamodb: Any) -> None:
    # Given another execution's lock expired a second ago (DynamoDB's TTL has not deleted it yet)
    hold(dynamodb, "web-app-test", OTHER, NOW - 1)
    # When this execution acquires
    output = run(lock_request(), store)
    # Then the lock is ours with a fresh expiry
    assert output["acquired"] is True
    assert items(dynamodb)["web-app-test"]["holder"] == ME
    assert items(dynamodb)["web-app-test"]["expiresAt"] == str(NOW + TTL)


def test_acquire_a_lock_expiring_exactly_now_is_still_held(store: RecordingStore, dynamodb: Any) -> None:
    # Given another execution's lock expires at this very second
    hold(dynamodb, "web-app-test", OTHER, NOW)
    # When this execution acquires
    output = run(lock_request(), store)
    # Then it is still the other's (expired means expiresAt < now)
    assert (output["acquired"], output["holder"]) == (False, OTHER)


def test_acquire_retried_by_the_same_execution_succeeds_and_refreshes_the_expiry(
    store: RecordingStore, dynamodb: Any
) -> None:
    # Given this execution acquired 10 minutes ago
    run(lock_request(), store, Clock(NOW - 600))
    # When the same execution acquires again (a retried or looping state)
    output = run(lock_request(), store, Clock(NOW))
    # Then it succeeds and the expiry moves forward
    assert output["acquired"] is True
    assert items(dynamodb)["web-app-test"] == {"holder": ME, "expiresAt": str(NOW + TTL), "acquiredAt": str(NOW)}


def test_acquire_refused_keeps_the_locks_this_execution_held_before_the_call(
    store: RecordingStore, dynamodb: Any
) -> None:
    # Given this execution already holds web-app-prod, and another execution holds web-app-test
    run(lock_request(stages=[PROD_STAGE]), store, Clock(NOW - 60))
    hold(dynamodb, "web-app-test", OTHER, NOW + 600)
    store.calls.clear()
    # When this execution acquires both
    output = run(lock_request(stages=[TEST_STAGE, PROD_STAGE]), store)
    # Then it is refused, and only what this call newly took would be given back: web-app-prod stays ours
    assert output["acquired"] is False
    assert ("delete", "web-app-prod") not in store.calls
    assert items(dynamodb)["web-app-prod"]["holder"] == ME


def test_acquire_locks_every_target_of_every_stage_once_in_sorted_order(store: RecordingStore, dynamodb: Any) -> None:
    # Given two stages, and the test stage listed twice
    stages = [TEST_STAGE, PROD_STAGE, TEST_STAGE]
    # When this execution acquires
    output = run(lock_request(stages=stages), store)
    # Then each target is locked once, in sorted order
    assert output["acquired"] is True
    assert output["targets"] == ["web-app-prod", "web-app-test"]
    assert store.calls == [("put", "web-app-prod"), ("put", "web-app-test")]
    assert {t: i["holder"] for t, i in items(dynamodb).items()} == {"web-app-prod": ME, "web-app-test": ME}


def test_acquire_second_execution_is_refused_while_the_first_holds_then_gets_it_after_release(
    store: RecordingStore, dynamodb: Any
) -> None:
    # Given the first execution holds both stages
    run(lock_request(stages=[TEST_STAGE, PROD_STAGE], execution=OTHER), store)
    # When a second execution asks for the test stage
    refused = run(lock_request(), store)
    # Then it is refused; after the first releases, it gets the lock
    assert (refused["acquired"], refused["holder"], refused["heldUntil"]) == (False, OTHER, NOW + TTL)
    run(lock_request("release", stages=[TEST_STAGE, PROD_STAGE], execution=OTHER), store)
    assert run(lock_request(attempt=refused["attempt"]), store)["acquired"] is True


def test_acquire_dry_run_reports_it_would_acquire_and_writes_nothing(store: RecordingStore, dynamodb: Any) -> None:
    # Given free targets
    # When acquiring in dry run
    output = run(lock_request(stages=[TEST_STAGE, PROD_STAGE], dry_run=True), store)
    # Then it would acquire, reading only
    assert output["acquired"] is True
    assert {call for call, _ in store.calls} == {"get"}
    assert items(dynamodb) == {}


def test_acquire_dry_run_reports_the_holder_that_would_block_and_writes_nothing(
    store: RecordingStore, dynamodb: Any
) -> None:
    # Given another execution holds web-app-prod
    hold(dynamodb, "web-app-prod", OTHER, NOW + 60)
    # When acquiring in dry run
    output = run(lock_request(stages=[TEST_STAGE, PROD_STAGE], dry_run=True), store)
    # Then it reports the holder and its expiry, and writes nothing
    assert (output["acquired"], output["holder"], output["heldUntil"], output["attempt"]) == (False, OTHER, NOW + 60, 1)
    assert list(items(dynamodb)) == ["web-app-prod"]
    assert {call for call, _ in store.calls} == {"get"}


# --- release -------------------------------------------------------------------------------------


def test_release_deletes_only_our_own_locks(store: RecordingStore, dynamodb: Any) -> None:
    # Given this execution holds web-app-test and another execution holds web-app-prod
    run(lock_request(), store)
    hold(dynamodb, "web-app-prod", OTHER, NOW + 600)
    # When this execution releases both stages
    output = run(lock_request("release", stages=[TEST_STAGE, PROD_STAGE]), store)
    # Then its own lock is gone and the other's stays
    assert output == {
        "action": "release",
        "acquired": False,
        "released": True,
        "targets": ["web-app-prod", "web-app-test"],
        "holder": None,
        "heldUntil": None,
        "attempt": 0,
        **NOTHING_QUEUED,
    }
    assert {t: i["holder"] for t, i in items(dynamodb).items()} == {"web-app-prod": OTHER}


def test_release_of_a_lock_already_gone_is_fine(store: RecordingStore, dynamodb: Any) -> None:
    # Given nothing is locked (expired and deleted by TTL, or released twice)
    # When this execution releases
    output = run(lock_request("release"), store)
    # Then that counts as released
    assert output["released"] is True
    assert items(dynamodb) == {}


def test_release_dry_run_deletes_nothing(store: RecordingStore, dynamodb: Any) -> None:
    # Given this execution holds a lock
    run(lock_request(), store)
    store.calls.clear()
    # When releasing in dry run
    output = run(lock_request("release", dry_run=True), store)
    # Then nothing is deleted and nothing is reported released
    assert output["released"] is False
    assert store.calls == []
    assert list(items(dynamodb)) == ["web-app-test"]


# --- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stage", "message"),
    [
        ({**TEST_STAGE, "name": "staging"}, r"stages\[0\]\.name: 'staging' is not a configured stage"),
        (
            {
                **TEST_STAGE,
                "targets": [{"autoScalingGroupName": "someone-else", "launchTemplateId": "lt-0aaaaaaaaaaaaaaa1"}],
            },
            r"stages\[0\]\.targets\[0\]: someone-else / lt-0aaaaaaaaaaaaaaa1 is not a configured target",
        ),
    ],
)
def test_lock_refuses_unconfigured_stages_and_targets_before_touching_dynamodb(
    stage: dict[str, Any], message: str
) -> None:
    # Given a DynamoDB client behind a Stubber with no responses: any call would fail the test
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    # When / Then
    with Stubber(dynamodb), pytest.raises(InvalidInput, match=message):
        logic.run(
            lock_request(stages=[stage]),
            CONFIG,
            store=LockTable(TABLE, dynamodb),
            tokens=Tokens(),
            ttl_seconds=TTL,
            queue_seconds=60,
            clock=Clock(),
        )


def test_adapter_sends_the_documented_conditional_put() -> None:
    # Given DynamoDB behind a Stubber that checks the exact request
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    with Stubber(dynamodb) as stub:
        stub.add_response(
            "put_item",
            {},
            {
                "TableName": TABLE,
                "Item": {
                    "target": {"S": "web-app-test"},
                    "holder": {"S": ME},
                    "expiresAt": {"N": str(NOW + TTL)},
                    "acquiredAt": {"N": str(NOW)},
                },
                "ConditionExpression": "attribute_not_exists(#t) OR expiresAt < :now OR holder = :me",
                "ExpressionAttributeNames": {"#t": "target"},
                "ExpressionAttributeValues": {":now": {"N": str(NOW)}, ":me": {"S": ME}},
                "ReturnValues": "ALL_OLD",
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            },
        )
        # When a lock is put
        outcome = LockTable(TABLE, dynamodb).put_if_free(
            LockItem(target="web-app-test", holder=ME, expires_at=NOW + TTL, acquired_at=NOW)
        )
        stub.assert_no_pending_responses()
    # Then it is written, with no previous item
    assert outcome == PutOutcome(written=True, previous=None)


def test_adapter_lets_other_dynamodb_errors_through() -> None:
    # Given the table does not exist
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    with Stubber(dynamodb) as stub:
        stub.add_client_error("delete_item", service_error_code="ResourceNotFoundException")
        # When / Then the error is not mistaken for "not ours"
        with pytest.raises(dynamodb.exceptions.ResourceNotFoundException):
            LockTable(TABLE, dynamodb).delete_if_held_by("web-app-test", ME)


# --- environment and handler ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"LOCK_TTL_SECONDS": "3600", "QUEUE_SECONDS": "60"}, "LOCK_TABLE_NAME: required field is missing"),
        ({"LOCK_TABLE_NAME": TABLE, "QUEUE_SECONDS": "60"}, "LOCK_TTL_SECONDS: required field is missing"),
        (
            {"LOCK_TABLE_NAME": TABLE, "LOCK_TTL_SECONDS": "soon", "QUEUE_SECONDS": "60"},
            "LOCK_TTL_SECONDS: Input should be a valid integer",
        ),
        (
            {"LOCK_TABLE_NAME": TABLE, "LOCK_TTL_SECONDS": "0", "QUEUE_SECONDS": "60"},
            "LOCK_TTL_SECONDS: Input should be greater than 0",
        ),
        ({"LOCK_TABLE_NAME": TABLE, "LOCK_TTL_SECONDS": "60"}, "QUEUE_SECONDS: required field is missing"),
    ],
)
def test_lock_environment_names_the_missing_or_bad_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=f"lock function environment: {message}"):
        load_environment(LockEnvironment, "lock", environ)


def test_lock_environment_reads_the_table_and_ttl() -> None:
    env = load_environment(
        LockEnvironment, "lock", {"LOCK_TABLE_NAME": TABLE, "LOCK_TTL_SECONDS": "7200", "QUEUE_SECONDS": "86400"}
    )
    assert (env.lock_table_name, env.lock_ttl_seconds, env.queue_seconds) == (TABLE, 7200, 86400)


@pytest.fixture
def handler(dynamodb: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("LOCK_TABLE_NAME", TABLE)
    monkeypatch.setenv("LOCK_TTL_SECONDS", str(TTL))
    monkeypatch.setenv("QUEUE_SECONDS", str(QUEUE_SECONDS))
    module = importlib.import_module("lock.handler")
    monkeypatch.setattr(module, "lock_table", lambda: LockTable(TABLE, dynamodb))
    monkeypatch.setattr(clock, "epoch_seconds", Clock())
    monkeypatch.setattr(module, "task_tokens", lambda: Tokens())
    monkeypatch.setattr(
        module,
        "ENV",
        LockEnvironment.model_validate(
            {"LOCK_TABLE_NAME": TABLE, "LOCK_TTL_SECONDS": TTL, "QUEUE_SECONDS": QUEUE_SECONDS}
        ),
    )
    return module


def test_handler_acquires_refuses_a_second_execution_and_releases(
    handler: Any, dynamodb: Any, lambda_context: Any
) -> None:
    # Given the state machine's acquire payload for two stages
    acquire = {"action": "acquire", "executionId": ME, "stages": [TEST_STAGE, PROD_STAGE]}
    # When this execution acquires, another tries, and this one releases
    first = handler.lambda_handler(acquire, lambda_context)
    second = handler.lambda_handler({**acquire, "executionId": OTHER, "attempt": 4}, lambda_context)
    released = handler.lambda_handler({**acquire, "action": "release"}, lambda_context)
    # Then the JSON answers are the documented shapes
    assert first == {
        "action": "acquire",
        "acquired": True,
        "released": False,
        "targets": ["web-app-prod", "web-app-test"],
        "holder": None,
        "heldUntil": None,
        "attempt": 0,
        "queued": False,
        "superseded": [],
        "woken": [],
    }
    assert second == {**first, "acquired": False, "holder": ME, "heldUntil": NOW + TTL, "attempt": 5}
    assert released == {**first, "action": "release", "acquired": False, "released": True}
    assert items(dynamodb) == {}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"action": "steal"}, "action"),
        ({"stages": []}, "stages"),
        ({"executionId": ""}, "executionId"),
        ({"attempt": -1}, "attempt"),
        ({"dryRun": "false"}, "dryRun"),
        ({"ttl": 5}, "ttl: unknown field"),
    ],
)
def test_handler_rejects_malformed_payloads(
    handler: Any, dynamodb: Any, lambda_context: Any, change: dict[str, Any], message: str
) -> None:
    event = {"action": "acquire", "executionId": ME, "stages": [TEST_STAGE], **change}
    with pytest.raises(InvalidInput, match=message):
        handler.lambda_handler(event, lambda_context)
    assert items(dynamodb) == {}


# --- the queue (safety rule 11: no push is lost) ----------------------------------------------------

NEWER = "arn:aws:states:eu-west-1:123456789012:execution:deploy:run-2"
PUSH_A, PUSH_B = "1" * 40, "2" * 40


def queue_request(
    action: str,
    execution: str,
    started: int,
    *,
    token: str | None = None,
    stages: list[dict[str, Any]] | None = None,
    deploy: str = "deploy",
    when_busy: str = "queue",
    commit: str | None = PUSH_A,
) -> LockInput:
    """What the ASL sends from AcquireLock and JoinQueue: the normalised request and $$.Execution.StartTime."""
    return LockInput.model_validate(
        {
            "action": action,
            "executionId": execution,
            "stages": stages if stages is not None else [TEST_STAGE],
            "request": {
                "action": deploy,
                "trigger": "codecommit",
                "whenBusy": when_busy,
                "commit": commit,
                "branch": "main",
                "stages": ["test"],  # the rest of the request is ignored here
            },
            "startedAt": f"2025-06-15T14:{started:02d}:00.000Z",
            **({"taskToken": token} if token else {}),
        }
    )


def queue_of(dynamodb: Any) -> dict[str, Any]:
    return {q.execution_id: q for q in LockTable(TABLE, dynamodb).queued()}


def test_enqueue_behind_a_held_lock_waits_with_its_token_and_answers_nothing(
    store: RecordingStore, dynamodb: Any
) -> None:
    # Given another deployment holds web-app-test
    hold(dynamodb, "web-app-test", OTHER, NOW + 600)
    tokens = Tokens()
    # When a push finds it locked and joins the queue
    output = call(queue_request("enqueue", ME, 5, token="token-me"), store, tokens)
    # Then it waits: its item holds the token, the targets, the commit, when it queued, whom it waits for
    assert (output.queued, output.holder, output.superseded, output.woken) == (True, OTHER, [], [])
    entry = queue_of(dynamodb)[ME]
    assert (entry.targets, entry.task_token, entry.commit, entry.queued_at, entry.blocked_by) == (
        ("web-app-test",),
        "token-me",
        PUSH_A,
        NOW,
        OTHER,
    )
    assert entry.expires_at == NOW + QUEUE_SECONDS + TTL
    # and no token was answered: it sleeps until a release wakes it
    assert tokens.sent == []


def test_enqueue_after_the_lock_was_released_meanwhile_wakes_itself(store: RecordingStore, dynamodb: Any) -> None:
    # Given the lock was released between the failed acquire and the queue item
    tokens = Tokens()
    # When the push joins the queue
    output = call(queue_request("enqueue", ME, 5, token="token-me"), store, tokens)
    # Then it resumes at once (back to AcquireLock) instead of sleeping until its fallback look
    assert output.woken == [ME]
    assert tokens.sent == [("token-me", "success", json.dumps({"wokenBy": ME}))]


def test_a_retried_enqueue_keeps_when_it_first_queued(store: RecordingStore, dynamodb: Any) -> None:
    hold(dynamodb, "web-app-test", OTHER, NOW + 7200)
    call(queue_request("enqueue", ME, 5, token="t1"), store)
    call(queue_request("enqueue", ME, 5, token="t2"), store, clock=Clock(NOW + 900))
    entry = queue_of(dynamodb)[ME]
    assert (entry.task_token, entry.queued_at) == ("t2", NOW)


def test_a_newer_push_supersedes_the_older_queued_push_it_covers(store: RecordingStore, dynamodb: Any) -> None:
    # Given a push queued behind a running deployment
    hold(dynamodb, "web-app-test", OTHER, NOW + 7200)
    tokens = Tokens()
    call(queue_request("enqueue", ME, 5, token="token-old"), store, tokens)
    # When a newer push to the same targets (and more) queues too
    output = call(
        queue_request("enqueue", NEWER, 9, token="token-new", stages=[TEST_STAGE, PROD_STAGE], commit=PUSH_B),
        store,
        tokens,
    )
    # Then the older one ends as Superseded, naming the newer, and leaves the queue; the newer waits
    assert output.superseded == [ME]
    assert tokens.sent == [
        ("token-old", "Superseded", f"superseded by {NEWER} (commit {PUSH_B}): a newer push deploys these targets")
    ]
    assert list(queue_of(dynamodb)) == [NEWER]


def test_an_older_push_queueing_behind_a_newer_queued_one_is_superseded_at_once(
    store: RecordingStore, dynamodb: Any
) -> None:
    hold(dynamodb, "web-app-test", OTHER, NOW + 7200)
    tokens = Tokens()
    call(queue_request("enqueue", NEWER, 9, token="token-new"), store, tokens)
    # When an older push (a late retry, a slow start) queues for the same targets
    output = call(queue_request("enqueue", ME, 5, token="token-old"), store, tokens)
    # Then it is superseded by the newer one and never waits
    assert output.superseded == [ME]
    assert not output.queued
    assert [(t, e) for t, e, _ in tokens.sent] == [("token-old", "Superseded")]
    assert list(queue_of(dynamodb)) == [NEWER]


def test_an_older_push_blocked_by_a_newer_push_holding_its_targets_is_superseded(
    store: RecordingStore, dynamodb: Any
) -> None:
    # Given a newer push took the lock (it says what it deploys and when it started)
    tokens = Tokens()
    call(queue_request("acquire", NEWER, 9), store, tokens)
    # When an older push (woken a moment too late) finds the targets taken and queues
    output = call(queue_request("enqueue", ME, 5, token="token-old"), store, tokens)
    # Then it is superseded: deploying it after the newer one would roll the fleet back to an older commit
    assert output.superseded == [ME]
    assert queue_of(dynamodb) == {}


def test_a_push_taking_the_locks_supersedes_older_queued_pushes_and_leaves_the_queue(
    store: RecordingStore, dynamodb: Any
) -> None:
    hold(dynamodb, "web-app-test", OTHER, NOW + 600)
    tokens = Tokens()
    call(queue_request("enqueue", ME, 5, token="token-old"), store, tokens)
    call(queue_request("enqueue", NEWER, 9, token="token-new"), store, tokens)
    assert list(queue_of(dynamodb)) == [NEWER]  # the older one was superseded when the newer queued
    # When the lock expires and the newer push takes it
    output = call(queue_request("acquire", NEWER, 9), store, tokens, clock=Clock(NOW + 601))
    # Then it holds the lock and is no longer queued
    assert output.acquired
    assert queue_of(dynamodb) == {}


def test_release_wakes_the_deployments_queued_for_the_released_targets_only(
    store: RecordingStore, dynamodb: Any
) -> None:
    # Given this execution holds test and prod; one push waits for test, a base rebuild for prod, one for another group
    call(queue_request("acquire", OTHER, 1, stages=[TEST_STAGE, PROD_STAGE]), store)
    table = LockTable(TABLE, dynamodb)
    for execution, targets, action in (
        (ME, ("web-app-test",), "deploy"),
        (NEWER, ("web-app-prod",), "rebuild-base"),
        ("arn:aws:states:eu-west-1:123456789012:execution:deploy:elsewhere", ("web-app-other",), "deploy"),
    ):
        table.put_queued(
            logic.QueuedDeployment(
                execution_id=execution,
                targets=targets,
                action=action,
                trigger="codecommit",
                started_at=NOW,
                queued_at=NOW,
                task_token=f"token-{execution.rsplit(':', 1)[-1]}",
                expires_at=NOW + QUEUE_SECONDS,
            )
        )
    tokens = Tokens(closed=frozenset({"token-run-2"}))
    # When it releases
    output = call(queue_request("release", OTHER, 1, stages=[TEST_STAGE, PROD_STAGE]), store, tokens)
    # Then both deployments waiting for its targets are resumed (a closed task is no error, just not woken);
    # the one waiting for another group sleeps on
    assert sorted(t for t, kind, _ in tokens.sent if kind == "success") == ["token-run-1", "token-run-2"]
    assert output.woken == [ME]
    assert len(queue_of(dynamodb)) == 3  # each leaves the queue itself, when it takes its locks


def test_a_base_rebuild_in_the_queue_is_never_superseded_by_a_push(store: RecordingStore, dynamodb: Any) -> None:
    hold(dynamodb, "web-app-test", OTHER, NOW + 7200)
    tokens = Tokens()
    call(queue_request("enqueue", ME, 5, token="t-rebuild", deploy="rebuild-base", commit=None), store, tokens)
    output = call(queue_request("enqueue", NEWER, 9, token="t-push"), store, tokens)
    assert output.superseded == []
    assert sorted(queue_of(dynamodb)) == [ME, NEWER]


@pytest.mark.parametrize(
    ("change", "message"),
    [({"dry_run": True}, "no dry run"), ({"when_busy": "wait"}, "whenBusy=queue"), ({"token": None}, "task token")],
)
def test_enqueue_refuses_what_must_never_wait_in_the_queue(
    store: RecordingStore, change: dict[str, Any], message: str
) -> None:
    request = queue_request("enqueue", ME, 5, token="t", when_busy=change.get("when_busy", "queue"))
    if "dry_run" in change:
        request = request.model_copy(update={"dry_run": True})
    if "token" in change:
        request = request.model_copy(update={"task_token": None})
    with pytest.raises(InvalidInput, match=message):
        call(request, store)


def test_a_push_queued_past_lock_queue_hours_fails_with_deployment_in_progress(
    store: RecordingStore, dynamodb: Any
) -> None:
    hold(dynamodb, "web-app-test", OTHER, NOW + 7 * 86400)
    tokens = Tokens()
    call(queue_request("enqueue", ME, 5, token="t1"), store, tokens)
    # When it looks again after lock.queueHours
    output = call(queue_request("enqueue", ME, 5, token="t2"), store, tokens, clock=Clock(NOW + QUEUE_SECONDS + 1))
    # Then its task fails with DeploymentInProgress (the failure path releases and notifies) and it leaves the queue
    assert not output.queued
    assert [(t, e) for t, e, _ in tokens.sent] == [("t2", "DeploymentInProgress")]
    assert queue_of(dynamodb) == {}
