"""scripts/status.py: `status` and `history` read the fleet, the executions and the lock table, and change nothing.

Groups, launch templates, AMIs and the lock table are moto's. moto has no DescribeInstanceRefreshes, and its
GetExecutionHistory outside its ASL interpreter returns one canned history whatever ran, so those two come from
botocore's Stubber, which validates every request and response against the service model.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber
from moto import mock_aws

from shared import tags
from shared.aws.lock_table import LockItem, LockTable, QueuedDeployment
from shared.aws.task_tokens import WaitItem, WaitTable
from tests.conftest import REGION
from tests.unit.blue_green_fleet import APP, EXECUTION, SEED, Fleet, build_fleet
from tests.unit.tables import create_coordination_table

status = importlib.import_module("scripts.status")

TABLE = "web-app-locks"
MACHINE = f"arn:aws:states:{REGION}:123456789012:stateMachine:web-app-deploy"
RUNNING = f"arn:aws:states:{REGION}:123456789012:execution:web-app-deploy:push-3f2c1e9"
QUEUED = f"arn:aws:states:{REGION}:123456789012:execution:web-app-deploy:push-9d8e7f6"
COMMIT = "3f2c1e9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e"
TOKEN = "AQB8AAAAKgAAAAMAAAAAAAAAAQ-secret-task-token"
NOW = int(datetime(2026, 11, 22, 10, 0, tzinfo=UTC).timestamp())
STARTED = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
LIVE = f"{SEED}-run-2"


class Autoscaling:
    """moto's Auto Scaling client, but DescribeInstanceRefreshes from a Stubber (moto does not implement it)."""

    def __init__(self, moto: Any) -> None:
        self._moto = moto
        self.refreshes = boto3.client("autoscaling", region_name=REGION)
        self.stub = Stubber(self.refreshes)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._moto, name)

    def describe_instance_refreshes(self, **request: Any) -> Any:
        return self.refreshes.describe_instance_refreshes(**request)


class Session:
    def __init__(self) -> None:
        self.region_name = REGION
        self.sfn = boto3.client("stepfunctions", region_name=REGION)
        self.sfn_stub = Stubber(self.sfn)
        self.autoscaling = Autoscaling(boto3.client("autoscaling", region_name=REGION))
        self.clients = {
            "ec2": boto3.client("ec2", region_name=REGION),
            "dynamodb": boto3.client("dynamodb", region_name=REGION),
            "stepfunctions": self.sfn,
            "autoscaling": self.autoscaling,
        }

    def client(self, service: str, region_name: str | None = None) -> Any:
        assert region_name == REGION  # the state machine's region, from its ARN
        return self.clients[service]


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Session, Fleet]]:
    with mock_aws():
        fleet = build_fleet()
        monkeypatch.setattr(status, "deploy_config", lambda: fleet.config)
        create_coordination_table(boto3.client("dynamodb", region_name=REGION), TABLE)
        session = Session()
        with session.sfn_stub, session.autoscaling.stub:
            yield session, fleet
            session.sfn_stub.assert_no_pending_responses()
            session.autoscaling.stub.assert_no_pending_responses()


def baked_image(fleet: Fleet, commit: str) -> tuple[str, str]:
    """An AMI of ours in moto with the tags the distribution writes, and a launch template version using it."""
    ec2 = boto3.client("ec2", region_name=REGION)
    reservation = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)
    ami = ec2.create_image(InstanceId=reservation["Instances"][0]["InstanceId"], Name=f"web-app-{commit[:7]}")[
        "ImageId"
    ]
    ec2.create_tags(
        Resources=[ami],
        Tags=[
            {"Key": tags.COMMIT, "Value": commit},
            {"Key": tags.BRANCH, "Value": "main"},
            {"Key": tags.BUILD_TIME, "Value": "2026-11-22T08:40:00Z"},
        ],
    )
    version = ec2.create_launch_template_version(
        LaunchTemplateId=fleet.template_id, SourceVersion="1", LaunchTemplateData={"ImageId": ami}
    )["LaunchTemplateVersion"]["VersionNumber"]
    return ami, str(version)


def run(session: Session, *argv: str) -> Any:
    return status.main([*argv, "--state-machine-arn", MACHINE, "--table", TABLE], session=session, clock=lambda: NOW)


def history_page(execution: str, *events: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    response = {"events": [{"timestamp": STARTED, "id": i + 1, **e} for i, e in enumerate(events)]}
    # Never with execution data: history inputs and outputs hold task tokens.
    return response, {"executionArn": execution, "reverseOrder": ANY, "maxResults": ANY, "includeExecutionData": False}


def entered(name: str) -> dict[str, Any]:
    return {"type": "TaskStateEntered", "stateEnteredEventDetails": {"name": name}}


def expect_run(
    session: Session,
    execution: str,
    *,
    state: str,
    status_: str = "RUNNING",
    request: dict[str, Any] | None = None,
    stopped: datetime | None = None,
    error: str | None = None,
    output: str | None = None,
) -> None:
    described: dict[str, Any] = {
        "executionArn": execution,
        "stateMachineArn": MACHINE,
        "status": status_,
        "startDate": STARTED,
        "input": json.dumps(request or {"action": "deploy", "trigger": "codecommit", "commit": COMMIT}),
    }
    for key, value in (("stopDate", stopped), ("error", error), ("output", output)):
        if value is not None:
            described[key] = value
    session.sfn_stub.add_response("describe_execution", described, {"executionArn": execution})
    session.sfn_stub.add_response("get_execution_history", *history_page(execution, entered(state)))


def listed(*executions: tuple[str, str]) -> dict[str, Any]:
    return {
        "executions": [
            {
                "executionArn": arn,
                "stateMachineArn": MACHINE,
                "name": arn.rsplit(":", 1)[-1],
                "status": s,
                "startDate": STARTED,
            }
            for arn, s in executions
        ]
    }


def test_status_shows_what_each_group_runs_the_running_deployment_locks_queue_and_approvals(
    world: tuple[Session, Fleet], capsys: pytest.CaptureFixture[str]
) -> None:
    session, fleet = world
    # Given a blue-green target whose live group runs a baked commit, a prod group that does not exist yet,
    ami, version = baked_image(fleet, COMMIT)
    fleet.create_ours(LIVE, "live", since="2026-11-22T09:30:00Z", execution=EXECUTION, image=ami, version=version)
    # a running deployment holding the test target, a queued push behind it, and prod's approval pending
    LockTable(TABLE, session.clients["dynamodb"]).put_if_free(
        LockItem(
            SEED, holder=RUNNING, expires_at=NOW + 3000, acquired_at=NOW - 600, action="deploy", started_at=NOW - 700
        )
    )
    LockTable(TABLE, session.clients["dynamodb"]).put_queued(
        QueuedDeployment(
            execution_id=QUEUED,
            targets=(SEED,),
            action="deploy",
            trigger="codecommit",
            started_at=NOW - 60,
            queued_at=NOW - 55,
            task_token=TOKEN,
            expires_at=NOW + 86_400,
            commit="9d8e7f6a" * 5,
            blocked_by=RUNNING,
        )
    )
    WaitTable(TABLE, session.clients["dynamodb"]).put(
        WaitItem(
            kind="approval",
            resource_id=f"{RUNNING}#prod",
            task_token=TOKEN,
            execution_id=RUNNING,
            expires_at=NOW + 72 * 3600,
            created_at=NOW - 120,
        )
    )
    session.sfn_stub.add_response(
        "list_executions",
        listed((RUNNING, "RUNNING")),
        {"stateMachineArn": MACHINE, "maxResults": 100, "statusFilter": "RUNNING"},
    )
    expect_run(session, RUNNING, state="WaitForApproval")
    # When an operator asks for the status as JSON
    assert run(session, "status", "--json") == 0
    found = json.loads(capsys.readouterr().out)
    # Then the test target shows its live group's AMI, commit, branch and since when; prod says it has no group
    test, prod = found["groups"]
    assert (test["group"], test["ami"], test["commit"], test["branch"]) == (LIVE, ami, COMMIT, "main")
    assert (test["since"], test["built"], test["version"]) == ("2026-11-22T09:30:00Z", "2026-11-22T08:40:00Z", version)
    assert (prod["stage"], prod["group"], prod["note"]) == ("prod", None, "no such Auto Scaling group")
    # and the running deployment with its state, the lock with its expiry, the queue and the approval
    assert [(r["name"], r["state"], r["commit"]) for r in found["running"]] == [
        ("push-3f2c1e9", "WaitForApproval", COMMIT)
    ]
    assert found["locks"] == [
        {
            "target": SEED,
            "holder": RUNNING,
            "since": "2026-11-22T09:50:00Z",
            "expires": "2026-11-22T10:50:00Z",
            "expired": False,
        }
    ]
    assert [(q["execution"], q["targets"], q["blockedBy"]) for q in found["queued"]] == [(QUEUED, [SEED], RUNNING)]
    assert found["approvals"] == [
        {"execution": RUNNING, "stage": "prod", "since": "2026-11-22T09:58:00Z", "expires": "2026-11-25T10:00:00Z"}
    ]


def test_status_never_reads_or_prints_a_task_token(
    world: tuple[Session, Fleet], capsys: pytest.CaptureFixture[str]
) -> None:
    session, _ = world
    # Given an approval and a queued push, both holding task tokens
    WaitTable(TABLE, session.clients["dynamodb"]).put(
        WaitItem(kind="approval", resource_id=f"{RUNNING}#prod", task_token=TOKEN, execution_id=RUNNING, expires_at=NOW)
    )
    session.sfn_stub.add_response(
        "list_executions",
        {"executions": []},
        {"stateMachineArn": MACHINE, "maxResults": 100, "statusFilter": "RUNNING"},
    )
    # When the status is shown, as a table and as JSON
    assert run(session, "status") == 0
    session.sfn_stub.add_response(
        "list_executions",
        {"executions": []},
        {"stateMachineArn": MACHINE, "maxResults": 100, "statusFilter": "RUNNING"},
    )
    assert run(session, "status", "--json") == 0
    # Then no token appears, and the table says how to answer the approval
    out = capsys.readouterr().out
    assert TOKEN not in out
    assert f"make approve EXECUTION={RUNNING} STAGE=prod" in out


def test_status_of_a_rolling_group_is_since_its_last_successful_refresh(
    world: tuple[Session, Fleet], capsys: pytest.CaptureFixture[str]
) -> None:
    session, fleet = world
    # Given the test stage rolling, its group on the default version, refreshed twice (the newer one failed)
    fleet.config = fleet.config.model_copy(
        update={"stages": (fleet.config.stages[0].model_copy(update={"strategy": "rolling"}), fleet.config.stages[1])}
    )
    fleet.create_group(SEED, version="$Default")
    refreshes = [
        {
            "InstanceRefreshId": "r-2",
            "AutoScalingGroupName": SEED,
            "Status": "Failed",
            "EndTime": datetime(2026, 11, 22, 9, 40, tzinfo=UTC),
        },
        {
            "InstanceRefreshId": "r-1",
            "AutoScalingGroupName": SEED,
            "Status": "Successful",
            "EndTime": datetime(2026, 11, 21, 18, 5, tzinfo=UTC),
        },
    ]
    session.autoscaling.stub.add_response(
        "describe_instance_refreshes",
        {"InstanceRefreshes": refreshes},
        {"AutoScalingGroupName": SEED, "MaxRecords": 100},
    )
    session.sfn_stub.add_response(
        "list_executions",
        {"executions": []},
        {"stateMachineArn": MACHINE, "maxResults": 100, "statusFilter": "RUNNING"},
    )
    # When the status is shown
    assert run(session, "status", "--json") == 0
    test = json.loads(capsys.readouterr().out)["groups"][0]
    # Then the group's default version resolves to its AMI (not registered here: deregistered) since the success
    assert (test["group"], test["version"], test["since"]) == (SEED, "$Default = 1", "2026-11-21T18:05:00Z")
    assert (test["ami"], test["note"]) == ("ami-0aaaaaaaaaaaaaaa1", "AMI deregistered")


def test_history_gives_each_deployments_trigger_commit_outcome_duration_and_stages(
    world: tuple[Session, Fleet], capsys: pytest.CaptureFixture[str]
) -> None:
    session, _ = world
    deployed, failed, superseded = (f"{MACHINE.replace('stateMachine', 'execution')}:{n}" for n in ("a", "b", "c"))
    session.sfn_stub.add_response(
        "list_executions",
        listed((deployed, "SUCCEEDED"), (failed, "FAILED"), (superseded, "SUCCEEDED")),
        {"stateMachineArn": MACHINE, "maxResults": 3},
    )
    # Given a deployment that succeeded in 42 minutes,
    expect_run(
        session,
        deployed,
        state="Deployed",
        status_="SUCCEEDED",
        stopped=datetime(2026, 11, 22, 9, 42, tzinfo=UTC),
        output='{"outcome": "deployed"}',
    )
    # one whose prod stage failed after test deployed,
    expect_run(
        session,
        failed,
        state="DeploymentFailed",
        status_="FAILED",
        stopped=datetime(2026, 11, 22, 9, 20, tzinfo=UTC),
        error="WaveFailed",
    )
    iteration = {"name": "DeployStages"}
    session.sfn_stub.add_response(
        "get_execution_history",
        *history_page(
            failed,
            {"type": "MapIterationSucceeded", "mapIterationSucceededEventDetails": {**iteration, "index": 0}},
            {"type": "MapIterationFailed", "mapIterationFailedEventDetails": {"name": "Waves", "index": 0}},
            {"type": "MapIterationFailed", "mapIterationFailedEventDetails": {**iteration, "index": 1}},
        ),
    )
    # and a queued push a newer one superseded
    expect_run(
        session,
        superseded,
        state="Superseded",
        status_="SUCCEEDED",
        stopped=datetime(2026, 11, 22, 9, 1, tzinfo=UTC),
        output="{}",
    )
    # When the last three are asked for
    assert run(session, "history", "--last", "3", "--json") == 0
    found = json.loads(capsys.readouterr().out)["deployments"]
    # Then each says how it ended, how long it took, and per stage what became of it
    assert [(d["outcome"], d["seconds"], d["trigger"], d["commit"]) for d in found] == [
        ("deployed", 42 * 60, "codecommit", COMMIT),
        ("failed: WaveFailed", 20 * 60, "codecommit", COMMIT),
        ("superseded", 60, "codecommit", COMMIT),
    ]
    assert [d["stages"] for d in found] == [
        {"test": "deployed", "prod": "deployed"},
        {"test": "deployed", "prod": "failed (WaveFailed)"},
        {"test": "not started", "prod": "not started"},
    ]


def test_history_table_is_readable(world: tuple[Session, Fleet], capsys: pytest.CaptureFixture[str]) -> None:
    session, _ = world
    done = f"{MACHINE.replace('stateMachine', 'execution')}:push-1"
    session.sfn_stub.add_response(
        "list_executions", listed((done, "SUCCEEDED")), {"stateMachineArn": MACHINE, "maxResults": 10}
    )
    expect_run(
        session,
        done,
        state="Deployed",
        status_="SUCCEEDED",
        stopped=datetime(2026, 11, 22, 9, 42, 5, tzinfo=UTC),
        output='{"outcome": "deployed"}',
    )
    assert run(session, "history") == 0
    header, row = capsys.readouterr().out.splitlines()
    assert header.split() == ["STARTED", "TRIGGER", "COMMIT", "OUTCOME", "DURATION", "STAGES", "EXECUTION"]
    assert row.split() == [
        "2026-11-22T09:00:00Z",
        "codecommit",
        COMMIT[:12],
        "deployed",
        "42m05s",
        "test=deployed",
        "prod=deployed",
        "push-1",
    ]


def test_without_credentials_it_says_so_in_one_line(
    world: tuple[Session, Fleet], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(variable)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    # When status runs with no credentials at all (a real boto3 session)
    code = status.main(["status", "--state-machine-arn", MACHINE, "--table", TABLE], session=boto3.session.Session())
    # Then it names the problem, without a traceback
    assert code == 2
    assert (
        capsys.readouterr().err.strip()
        == "error: no AWS credentials: sign in (aws sso login, a profile, AWS_* variables) first"
    )


def test_status_is_read_only(world: tuple[Session, Fleet], capsys: pytest.CaptureFixture[str]) -> None:
    session, _ = world
    # Given a lock held and a group that exists
    fleet_groups = sorted(
        g["AutoScalingGroupName"]
        for g in session.clients["autoscaling"].describe_auto_scaling_groups()["AutoScalingGroups"]
    )
    LockTable(TABLE, session.clients["dynamodb"]).put_if_free(
        LockItem(SEED, holder=RUNNING, expires_at=NOW - 1, acquired_at=NOW - 10_000)
    )
    before = session.clients["dynamodb"].scan(TableName=TABLE)["Items"]
    session.sfn_stub.add_response(
        "list_executions",
        {"executions": []},
        {"stateMachineArn": MACHINE, "maxResults": 100, "statusFilter": "RUNNING"},
    )
    # When the status is shown
    assert run(session, "status") == 0
    # Then an expired lock is shown as expired, and is still there: status changes nothing
    assert "(expired)" in capsys.readouterr().out
    assert session.clients["dynamodb"].scan(TableName=TABLE)["Items"] == before
    assert (
        sorted(
            g["AutoScalingGroupName"]
            for g in session.clients["autoscaling"].describe_auto_scaling_groups()["AutoScalingGroups"]
        )
        == fleet_groups
    )
    assert APP == "web-app"
