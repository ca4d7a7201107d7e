"""The one table of the deploy steps: what each step's function is, what it gets and what it may do.

Each entry is a folder under lambdas/ with its handler, the `${...}` placeholder the state machine
(statemachine/deploy.asl.json) invokes it by, written out so a grep from the ASL lands here (None for the
steps EventBridge invokes), its limits, its environment, the handler's model of that environment, and the
function that grants its IAM (stacks/step_grants.py, blue_green_grants.py, bake_grants.py). Besides its own
environment every function gets POWERTOOLS_* (stacks/lambda_function.py) and DEPLOY_CONFIG (the deploy
configuration every handler parses). tests/infra/test_steps.py pins the table to the ASL, lambdas/ and the
handlers' environment models.

Adding a step: its folder under lambdas/, its entry here (with its grant and environment functions), its
state in the ASL.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aws_cdk import aws_lambda as lambda_

from stacks import bake_grants, blue_green_grants, step_grants
from stacks.step_grants import StepContext

Environment = Callable[[StepContext], dict[str, str]]
Grant = Callable[[StepContext, lambda_.Function], None]


def _no_environment(_: StepContext) -> dict[str, str]:
    return {}


@dataclass(frozen=True, kw_only=True)
class Step:
    folder: str  # lambdas/<folder>/handler.py
    handler: str
    placeholder: str | None  # the ASL's `${...}` name of its function ARN; None: EventBridge invokes it
    timeout_seconds: int
    memory_mb: int = 256
    grant: Grant
    environment: Environment = _no_environment
    environment_model: str | None = None  # "<module>.<class>": the variables the handler validates at cold start
    eventbridge: bool = False  # invoked asynchronously by an EventBridge rule (gets the dead-letter queue)
    blue_green: bool = False  # runs in blue-green stages only

    def __post_init__(self) -> None:
        if (self.placeholder is None) != self.eventbridge:
            raise ValueError(f"{self.folder}: a placeholder for the state machine's steps, none for EventBridge's")


STEPS: tuple[Step, ...] = (
    Step(
        folder="validate_request",
        handler="validate_request.handler.lambda_handler",
        placeholder="ValidateRequestFunctionArn",
        timeout_seconds=30,
        grant=step_grants.grant_validate_request,
    ),
    Step(
        folder="lock",
        handler="lock.handler.lambda_handler",
        placeholder="LockFunctionArn",
        timeout_seconds=30,
        grant=step_grants.grant_lock,
        environment=step_grants.lock_environment,
        environment_model="lock.models.LockEnvironment",
    ),
    Step(
        folder="start_image_build",
        handler="start_image_build.handler.lambda_handler",
        placeholder="StartImageBuildFunctionArn",
        timeout_seconds=30,
        grant=bake_grants.grant_start_image_build,
        environment=bake_grants.start_image_build_environment,
        environment_model="start_image_build.models.StartImageBuildEnvironment",
    ),
    Step(
        folder="check_image_build",
        handler="check_image_build.handler.lambda_handler",
        placeholder="CheckImageBuildFunctionArn",
        timeout_seconds=30,
        grant=bake_grants.grant_check_image_build,
        environment_model="check_image_build.models.CheckImageBuildEnvironment",
    ),
    Step(
        folder="publish_launch_template_version",
        handler="publish_launch_template_version.handler.lambda_handler",
        placeholder="PublishLaunchTemplateVersionFunctionArn",
        timeout_seconds=90,
        grant=step_grants.grant_publish_launch_template_version,
    ),
    Step(
        folder="start_instance_refresh",
        handler="start_instance_refresh.handler.lambda_handler",
        placeholder="StartInstanceRefreshFunctionArn",
        timeout_seconds=30,
        grant=step_grants.grant_start_instance_refresh,
    ),
    Step(
        folder="check_refresh",
        handler="check_refresh.handler.lambda_handler",
        placeholder="CheckRefreshFunctionArn",
        timeout_seconds=30,
        grant=step_grants.grant_check_refresh,
    ),
    Step(
        folder="rollback",
        handler="rollback.handler.lambda_handler",
        placeholder="RollbackFunctionArn",
        timeout_seconds=90,
        grant=step_grants.grant_rollback,
    ),
    Step(
        folder="prune_images",
        handler="prune_images.handler.lambda_handler",
        placeholder="PruneImagesFunctionArn",
        timeout_seconds=600,
        memory_mb=512,
        grant=step_grants.grant_prune_images,
    ),
    Step(
        folder="register_wait",
        handler="register_wait.handler.lambda_handler",
        placeholder="RegisterWaitFunctionArn",
        timeout_seconds=30,
        grant=bake_grants.grant_register_wait,
        environment=step_grants.register_wait_environment,
        environment_model="register_wait.models.RegisterWaitEnvironment",
    ),
    # the outcome notifications (shared.notifications renders them; register_wait and finish_execution use it too)
    Step(
        folder="notify",
        handler="notify.handler.lambda_handler",
        placeholder="NotifyFunctionArn",
        timeout_seconds=30,
        grant=step_grants.grant_notify,
        environment=step_grants.notify_environment,
        environment_model="notify.models.NotifyEnvironment",
    ),
    # EventBridge: AWS's completion events resume the waiting execution
    Step(
        folder="relay_event",
        handler="relay_event.handler.lambda_handler",
        placeholder=None,
        timeout_seconds=30,
        grant=step_grants.grant_relay_event,
        environment=step_grants.relay_event_environment,
        environment_model="relay_event.models.RelayEventEnvironment",
        eventbridge=True,
    ),
    # EventBridge: an execution that ended outside its failure path (stopped, timed out, history quota)
    Step(
        folder="finish_execution",
        handler="finish_execution.handler.lambda_handler",
        placeholder=None,
        timeout_seconds=120,
        grant=step_grants.grant_finish_execution,
        environment=step_grants.finish_execution_environment,
        environment_model="finish_execution.models.FinishExecutionEnvironment",
        eventbridge=True,
    ),
    Step(
        folder="create_green_group",
        handler="create_green_group.handler.lambda_handler",
        placeholder="CreateGreenGroupFunctionArn",
        timeout_seconds=60,
        grant=blue_green_grants.grant_create_green_group,
        blue_green=True,
    ),
    Step(
        folder="check_green_group",
        handler="check_green_group.handler.lambda_handler",
        placeholder="CheckGreenGroupFunctionArn",
        timeout_seconds=30,
        grant=blue_green_grants.grant_check_green_group,
        blue_green=True,
    ),
    Step(
        folder="shift_traffic",
        handler="shift_traffic.handler.lambda_handler",
        placeholder="ShiftTrafficFunctionArn",
        timeout_seconds=30,
        grant=blue_green_grants.grant_shift_traffic,
        blue_green=True,
    ),
    Step(
        folder="discard_green",
        handler="discard_green.handler.lambda_handler",
        placeholder="DiscardGreenFunctionArn",
        timeout_seconds=90,
        grant=blue_green_grants.grant_discard_green,
        blue_green=True,
    ),
    Step(
        folder="retire_groups",
        handler="retire_groups.handler.lambda_handler",
        placeholder="RetireGroupsFunctionArn",
        timeout_seconds=60,
        grant=blue_green_grants.grant_retire_groups,
        blue_green=True,
    ),
)
BY_FOLDER: dict[str, Step] = {step.folder: step for step in STEPS}
BY_PLACEHOLDER: dict[str, Step] = {step.placeholder: step for step in STEPS if step.placeholder}


def wire_steps(ctx: StepContext) -> None:
    """Every step's environment and IAM, in the table's order (the stack calls it once both constructs exist)."""
    for step in STEPS:
        fn = ctx.workflow.functions[step.folder]
        for name, value in step.environment(ctx).items():
            fn.add_environment(name, value)
        step.grant(ctx, fn)
