"""Throttling: a throttled call surfaces as `Throttled` once botocore's retries are spent, through the real adapters,
and no per-call error handling takes it for an outcome.

The retry path is botocore's own: the process's clients (shared.aws.clients, standard mode), a `before-send` hook
answering each attempt as a throttled AWS response would (botocore then parses it and decides to retry, as for a
real one), and botocore's backoff recorded instead of slept. Per-call handling is checked with botocore's Stubber,
which validates each request against the service model.
"""

from __future__ import annotations

import ast
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.endpoint
import botocore.session
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import BotoCoreError, ClientError
from botocore.retries.standard import (
    RetryContext,
    RetryEventAdapter,
    ThrottledRetryableChecker,
    ThrottlingErrorDetector,
)
from botocore.stub import Stubber
from moto import mock_aws

import shared.aws.clients
from shared.aws.alarms import Alarms
from shared.aws.autoscaling import AutoScaling
from shared.aws.elbv2 import LoadBalancing
from shared.aws.groups import BlueGreenGroups, Capacity
from shared.aws.imagebuilder import ImageBuilder, ImageTags
from shared.aws.images import Images
from shared.aws.launch_templates import LaunchTemplates
from shared.aws.lock_table import LockItem, LockTable
from shared.aws.references import FleetReferences
from shared.aws.secrets import Secrets
from shared.aws.stepfunctions import StepFunctions
from shared.aws.task_tokens import TaskTokens, WaitTable
from shared.aws.throttling import (
    BOTOCORE_THROTTLING_CODES,
    IMAGE_BUILDER_RATE_CODE,
    THROTTLING_CODES,
    is_throttling,
    translate_throttling,
)
from shared.errors import AutoScalingGroupNotFound, DeployError, Throttled
from tests.conftest import ACCOUNT, REGION

LAMBDAS = Path(shared.aws.clients.__file__).resolve().parents[2]
TEMPLATE = "lt-0123456789abcdef0"
AMI = "ami-0123456789abcdef0"
GROUP = "web-app-test"
# botocore standard mode with max_attempts 5 (shared/aws/clients.py): the first attempt and 5 retries.
ATTEMPTS = 6

# A throttled request's response. EC2 answers RequestLimitExceeded ("Request throttling for the Amazon EC2 API",
# https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-throttling.html) in its Query API error format
# (Response/Errors/Error: "Error codes for the Amazon EC2 API", https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html);
# Auto Scaling's Query API answers ErrorResponse/Error with Throttling (botocore's query parser reads either).
_THROTTLED_BODIES = {
    "ec2": b"<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message>"
    b"</Error></Errors><RequestID>00000000-0000-0000-0000-000000000000</RequestID></Response>",
    "autoscaling": b"<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message>"
    b"</Error><RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>",
}


class _Body:
    def __init__(self, content: bytes) -> None:
        self._content = content

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._content


class Throttle:
    """Answers the first `times` attempts of a Query API operation (every attempt when None) as throttled."""

    def __init__(self, client: Any, operation: str, times: int | None = None) -> None:
        self.operation = operation
        self.times = times
        self.attempts = 0
        self.throttled = 0
        self._body = _THROTTLED_BODIES[client.meta.service_model.service_name]
        # First in line: moto answers in before-send too, and botocore takes the first response it is given.
        client.meta.events.register_first(f"before-send.*.{operation}", self)

    def __call__(self, request: Any, **_: Any) -> AWSResponse | None:
        self.attempts += 1
        if self.times is not None and self.throttled >= self.times:
            return None
        self.throttled += 1
        return AWSResponse(request.url, 400, {}, _Body(self._body))


@pytest.fixture
def backoff(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """botocore's retry waits, recorded instead of slept (botocore.endpoint.Endpoint._needs_retry sleeps there)."""
    waits: list[float] = []
    monkeypatch.setattr(botocore.endpoint, "time", types.SimpleNamespace(sleep=waits.append))
    return waits


@pytest.fixture
def process_clients() -> Iterator[None]:
    """The adapters' own clients, created afresh for the test (and forgotten after it)."""
    shared.aws.clients.client.cache_clear()
    yield
    shared.aws.clients.client.cache_clear()


# --- which errors are throttles ----------------------------------------------------------------------------


def test_the_throttling_codes_are_the_ones_botocore_retries_as_throttling() -> None:
    # Given the installed botocore's list / Then ours is the same (resync shared/aws/throttling.py when it moves)
    assert set(ThrottledRetryableChecker()._throttled_error_codes) == BOTOCORE_THROTTLING_CODES


def _botocore_calls_it_throttling(service: str, operation: str, code: str, status: int) -> bool:
    model = botocore.session.get_session().get_service_model(service).operation_model(operation)
    context = RetryContext(
        attempt_number=1,
        operation_model=model,
        parsed_response={"Error": {"Code": code, "Message": "Rate exceeded"}},
        http_response=AWSResponse("https://example.invalid", status, {}, _Body(b"")),
    )
    return bool(ThrottlingErrorDetector(RetryEventAdapter()).is_throttling_error_from_context(context))


@pytest.mark.parametrize("code", sorted(BOTOCORE_THROTTLING_CODES))
def test_a_code_botocore_retries_as_throttling_is_a_throttle(code: str) -> None:
    assert _botocore_calls_it_throttling("ec2", "CreateLaunchTemplateVersion", code, 400)
    assert is_throttling(code, 400)


def test_image_builders_rate_error_is_a_throttle_although_botocore_does_not_retry_it() -> None:
    # Given Image Builder's CallRateLimitExceededException (HTTP 429, modeled on GetImage)
    model = botocore.session.get_session().get_service_model("imagebuilder").operation_model("GetImage")
    # Then botocore gives it no throttling retry, and we name it Throttled so the state machine backs off
    assert not _botocore_calls_it_throttling("imagebuilder", "GetImage", IMAGE_BUILDER_RATE_CODE, 429)
    assert is_throttling(IMAGE_BUILDER_RATE_CODE, 429, model)
    assert IMAGE_BUILDER_RATE_CODE in THROTTLING_CODES


def test_a_429_is_a_throttle_unless_the_operation_models_its_code() -> None:
    ec2 = botocore.session.get_session().get_service_model("ec2").operation_model("DescribeImages")
    get_image = botocore.session.get_session().get_service_model("imagebuilder").operation_model("GetImage")

    assert is_throttling("SomethingUnmodeled", 429, ec2)
    assert _botocore_calls_it_throttling("ec2", "DescribeImages", "SomethingUnmodeled", 429)
    assert not is_throttling("InvalidRequestException", 429, get_image)
    assert not _botocore_calls_it_throttling("imagebuilder", "GetImage", "InvalidRequestException", 429)
    assert not is_throttling("InvalidParameterValue", 400, ec2)
    assert not is_throttling("KmsThrottlingException", 400)  # KMS behind Step Functions: not botocore's throttle


# --- botocore's retries, then Throttled ---------------------------------------------------------------------


def test_a_throttled_ec2_call_raises_throttled_once_botocores_retries_are_spent(
    process_clients: None, backoff: list[float]
) -> None:
    # Given EC2 throttling every CreateLaunchTemplateVersion the process's client sends
    throttle = Throttle(shared.aws.clients.client("ec2"), "CreateLaunchTemplateVersion")
    # When the adapter publishes a version
    with pytest.raises(Throttled) as raised:
        LaunchTemplates().create_version(
            TEMPLATE, source_version=1, image_id=AMI, description="d", client_token="ia-token"
        )
    # Then botocore tried 6 times, backing off between tries, and the step sees Throttled with the cause kept
    assert throttle.attempts == ATTEMPTS
    assert len(backoff) == ATTEMPTS - 1
    cause = raised.value.__cause__
    assert isinstance(cause, ClientError)
    assert cause.response["Error"]["Code"] == "RequestLimitExceeded"
    assert cause.operation_name == "CreateLaunchTemplateVersion"
    assert "ec2 CreateLaunchTemplateVersion" in str(raised.value)
    assert "RequestLimitExceeded" in str(raised.value)
    assert f"after {ATTEMPTS} attempts" in str(raised.value)


def test_a_throttled_auto_scaling_call_raises_throttled_not_an_outcome(
    process_clients: None, backoff: list[float]
) -> None:
    # Given Auto Scaling throttling every StartInstanceRefresh and UpdateAutoScalingGroup
    client = shared.aws.clients.client("autoscaling")
    start = Throttle(client, "StartInstanceRefresh")
    update = Throttle(client, "UpdateAutoScalingGroup")
    # When a refresh is started and a group resized through the real adapters
    with pytest.raises(Throttled) as started:
        AutoScaling().start_refresh(GROUP, template_id=TEMPLATE, version=5, preferences={})
    with pytest.raises(Throttled) as resized:
        BlueGreenGroups().set_capacity(GROUP, Capacity(1, 2, 1))
    # Then each is Throttled (not RefreshInProgress, GroupBusy or AutoScalingGroupNotFound) after botocore's tries
    assert (start.attempts, update.attempts) == (ATTEMPTS, ATTEMPTS)
    for raised, operation in ((started, "StartInstanceRefresh"), (resized, "UpdateAutoScalingGroup")):
        assert type(raised.value) is Throttled
        assert isinstance(raised.value.__cause__, ClientError)
        assert raised.value.__cause__.response["Error"]["Code"] == "Throttling"
        assert f"autoscaling {operation} throttled: Throttling" in str(raised.value)


def test_throttles_botocore_retries_away_never_reach_the_step(process_clients: None, backoff: list[float]) -> None:
    with mock_aws():
        # Given a template and a group, and AWS throttling the first 5 attempts of each read
        ec2 = shared.aws.clients.client("ec2")
        asg = shared.aws.clients.client("autoscaling")
        template = ec2.create_launch_template(LaunchTemplateName="web-app", LaunchTemplateData={"ImageId": AMI})
        template_id = template["LaunchTemplate"]["LaunchTemplateId"]
        asg.create_auto_scaling_group(
            AutoScalingGroupName=GROUP,
            MinSize=0,
            MaxSize=1,
            LaunchTemplate={"LaunchTemplateId": template_id, "Version": "1"},
            AvailabilityZones=[f"{REGION}a"],
        )
        versions = Throttle(ec2, "DescribeLaunchTemplateVersions", times=ATTEMPTS - 1)
        groups = Throttle(asg, "DescribeAutoScalingGroups", times=ATTEMPTS - 1)
        # When the adapters read them
        default = LaunchTemplates().default_version(template_id)
        group = AutoScaling().describe_group(GROUP)
    # Then botocore's last try answers, and the step gets the answer
    assert (default.number, default.image_id) == (1, AMI)
    assert group.launch_template_id == template_id
    assert (versions.attempts, groups.attempts) == (ATTEMPTS, ATTEMPTS)


# --- no per-call handling swallows a throttle ---------------------------------------------------------------


def _stubbed(service: str) -> tuple[Any, Stubber]:
    client = boto3.client(service, region_name=REGION)
    return client, Stubber(client)


SFN_ARN = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:web-app-deploy"
BUILD_ARN = f"arn:aws:imagebuilder:{REGION}:{ACCOUNT}:image/web-app/1.0.0/1"
PIPELINE_ARN = f"arn:aws:imagebuilder:{REGION}:{ACCOUNT}:image-pipeline/web-app"
RECIPE_ARN = f"arn:aws:imagebuilder:{REGION}:{ACCOUNT}:image-recipe/web-app-app-0123456789ab/1.0.0"
RECIPE_REQUEST = {
    "name": "web-app-app-0123456789ab",
    "semanticVersion": "1.0.0",
    "parentImage": AMI,
    "components": [{"componentArn": f"arn:aws:imagebuilder:{REGION}:{ACCOUNT}:component/web-app-app-install/1.0.0/1"}],
    "clientToken": "recipe-token",
}
TG_ARN = f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:targetgroup/web/0123456789abcdef"

# (service, method, code, HTTP status, the adapter call, what it would have made of a ClientError)
PER_CALL_HANDLING: list[tuple[str, str, str, int, Callable[[Any], Any], str]] = [
    ("ec2", "deregister_image", "RequestLimitExceeded", 400,
     lambda c: Images(c).deregister_with_snapshots(AMI), "ImageDeregistrationFailed: prune reports it, goes on"),
    ("ec2", "describe_images", "RequestLimitExceeded", 400,
     lambda c: Images(c).get_own_image(AMI), "None for an absent image"),
    ("ec2", "delete_launch_template_versions", "RequestLimitExceeded", 400,
     lambda c: LaunchTemplates(c).delete_versions(TEMPLATE, [1, 2]), "every version reported as failed"),
    ("ec2", "modify_launch_template", "RequestLimitExceeded", 400,
     lambda c: LaunchTemplates(c).set_default_version(TEMPLATE, 2), "LaunchTemplateNotFound"),
    ("ec2", "describe_launch_template_versions", "RequestLimitExceeded", 400,
     lambda c: FleetReferences(c).launch_template_versions(TEMPLATE), "LaunchTemplateNotFound"),
    ("ec2", "create_tags", "RequestLimitExceeded", 400,
     lambda c: ImageTags(c).tag_image(AMI, {"k": "v"}), "ImageNotReady"),
    ("autoscaling", "rollback_instance_refresh", "Throttling", 400,
     lambda c: AutoScaling(c).rollback_refresh(GROUP), "a RollbackAttempt outcome"),
    ("autoscaling", "cancel_instance_refresh", "Throttling", 400,
     lambda c: AutoScaling(c).cancel_refresh(GROUP), "None: no active refresh"),
    ("autoscaling", "delete_auto_scaling_group", "Throttling", 400,
     lambda c: BlueGreenGroups(c).delete(GROUP), "False: already gone, or GroupBusy"),
    ("dynamodb", "put_item", "ProvisionedThroughputExceededException", 400,
     lambda c: LockTable("locks", c).put_if_free(LockItem(GROUP, holder="me", expires_at=2, acquired_at=1)),
     "a lock outcome"),
    ("dynamodb", "delete_item", "ThrottlingException", 400,
     lambda c: LockTable("locks", c).delete_if_held_by(GROUP, "me"), "False: not ours"),
    ("dynamodb", "delete_item", "RequestLimitExceeded", 400,
     lambda c: WaitTable("locks", c).delete_if_token("refresh", "r-1", "token"), "False: another token"),
    ("stepfunctions", "send_task_success", "ThrottlingException", 400,
     lambda c: TaskTokens(c).send_success("token", {}), "a TokenDelivery outcome"),
    ("stepfunctions", "start_execution", "ThrottlingException", 400,
     lambda c: StepFunctions(c).start_execution(SFN_ARN, "run-1", "{}"), "ExecutionAlreadyExists outcome"),
    ("secretsmanager", "get_secret_value", "ThrottlingException", 400,
     lambda c: Secrets(c).get_string("webhook"), "SecretNotFound"),
    ("imagebuilder", "get_image", IMAGE_BUILDER_RATE_CODE, 429,
     lambda c: ImageBuilder(c).get_image(BUILD_ARN), "ImageBuildNotFound"),
    ("imagebuilder", "start_image_pipeline_execution", "TooManyRequestsException", 429,
     lambda c: ImageBuilder(c).start_pipeline(PIPELINE_ARN, "token"), "ImagePipelineNotFound"),
    ("elbv2", "describe_target_health", "Throttling", 400,
     lambda c: LoadBalancing(c).target_health(TG_ARN), "TargetGroupNotFound"),
    ("cloudwatch", "describe_alarms", "Throttling", 400,
     lambda c: Alarms(c).states(["web-app-5xx"]), "missing alarms left out"),
    ("imagebuilder", "create_image_recipe", IMAGE_BUILDER_RATE_CODE, 429,
     lambda c: ImageBuilder(c).create_recipe(RECIPE_REQUEST, RECIPE_ARN), "this bake's recipe (already exists)"),
    ("imagebuilder", "cancel_image_creation", IMAGE_BUILDER_RATE_CODE, 429,
     lambda c: ImageBuilder(c).cancel(BUILD_ARN, "cancel-token"), "False: the build already ended"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("service", "method", "code", "status", "call", "otherwise"),
    PER_CALL_HANDLING,
    ids=[f"{s}.{m}:{code}" for s, m, code, *_ in PER_CALL_HANDLING],
)
def test_a_throttle_passes_every_per_call_error_handling_as_throttled(
    service: str, method: str, code: str, status: int, call: Callable[[Any], Any], otherwise: str
) -> None:
    # Given the service answering the adapter's call with a throttling error
    client, stub = _stubbed(service)
    stub.add_client_error(method, service_error_code=code, service_message="Rate exceeded", http_status_code=status)
    # When the adapter makes the call / Then it raises Throttled, not what it makes of other errors (`otherwise`)
    with stub, pytest.raises(Throttled) as raised:
        call(client)
    assert isinstance(raised.value.__cause__, ClientError)
    assert raised.value.__cause__.response["Error"]["Code"] == code
    assert code in str(raised.value)


def test_other_errors_are_still_translated_by_the_adapters() -> None:
    # Given errors that are not throttles
    asg, asg_stub = _stubbed("autoscaling")
    asg_stub.add_client_error(
        "update_auto_scaling_group", service_error_code="ValidationError", service_message="Group not found"
    )
    ec2, ec2_stub = _stubbed("ec2")
    ec2_stub.add_client_error("deregister_image", service_error_code="InvalidAMIID.NotFound", service_message="gone")
    sfn, sfn_stub = _stubbed("stepfunctions")
    sfn_stub.add_client_error("send_task_success", service_error_code="KmsThrottlingException", service_message="kms")
    # Then each adapter answers as before: its named error, its outcome, or the ClientError itself
    with asg_stub, pytest.raises(AutoScalingGroupNotFound):
        BlueGreenGroups(asg).set_capacity(GROUP, Capacity(1, 2, 1))
    with ec2_stub:
        assert Images(ec2).deregister_with_snapshots(AMI).status == "already-gone"
    with sfn_stub, pytest.raises(ClientError, match="KmsThrottlingException"):
        TaskTokens(sfn).send_success("token", {})


def test_a_stand_in_that_is_no_botocore_client_is_left_as_it_is() -> None:
    fake = types.SimpleNamespace(send_success=lambda *_: None)

    assert translate_throttling(fake) is fake


def test_translating_a_client_twice_raises_one_throttled() -> None:
    # Given a client given to two adapters (each translates it)
    client, stub = _stubbed("ec2")
    Images(client)
    LaunchTemplates(client)
    stub.add_client_error("modify_launch_template", service_error_code="RequestLimitExceeded", http_status_code=400)
    # Then a throttle is one Throttled whose cause is the ClientError (not a Throttled caused by a Throttled)
    with stub, pytest.raises(Throttled) as raised:
        LaunchTemplates(client).set_default_version(TEMPLATE, 2)
    assert type(raised.value.__cause__) is ClientError


# --- nothing under lambdas/ catches what Throttled is -------------------------------------------------------

# Handlers that catch every exception on purpose, each a best-effort side step whose failure the workflow covers.
BROAD_ON_PURPOSE = {
    ("register_wait/logic.py", "look"),  # an optimisation: the event or the fallback poll decides
    ("register_wait/logic.py", "resume"),  # the task's timeout (the fallback poll) ends the wait
    ("register_wait/logic.py", "forget"),  # DynamoDB's TTL removes the item
}
_CATCHES_THROTTLED = {cls.__name__ for cls in Throttled.__mro__} | {"BaseException"}


def _broad_handlers() -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for path in LAMBDAS.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for function in [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]:
            for handler in [n for n in ast.walk(function) if isinstance(n, ast.ExceptHandler)]:
                caught = [] if handler.type is None else [handler.type]
                if isinstance(handler.type, ast.Tuple):
                    caught = list(handler.type.elts)
                names = {c.id if isinstance(c, ast.Name) else getattr(c, "attr", "") for c in caught}
                if handler.type is None or names & _CATCHES_THROTTLED:
                    found.add((str(path.relative_to(LAMBDAS)), function.name))
    return found


def test_throttled_is_none_of_the_errors_per_call_handling_catches() -> None:
    # Given what the adapters and steps catch per call: ClientError, BotoCoreError, their own named errors
    assert not issubclass(Throttled, ClientError | BotoCoreError)
    assert issubclass(Throttled, DeployError)
    # Then the only handlers that could catch Throttled are the deliberate best-effort ones
    assert _broad_handlers() == BROAD_ON_PURPOSE
