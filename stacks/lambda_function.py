"""One way to build every Lambda function of the project: the latest Python runtime, arm64, JSON logs to
its own log group with retention, X-Ray, Powertools from its official public layer, code from `lambdas/`
(no Docker bundling: boto3 comes with the runtime) and its own role with no managed policies.

The layer is the Powertools release the tests run: the version pinned in requirements-dev.txt, read here at
synth, names Powertools' public SSM parameter for that release, runtime and architecture, which CloudFormation
resolves to the layer's ARN at deploy time. No layer number is written by hand anywhere."""

from __future__ import annotations

import re
from pathlib import Path

from aws_cdk import CfnDynamicReference, CfnDynamicReferenceService, Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stacks.checkov import skip
from stacks.config import LOG_RETENTION_DAYS, PROJECT_ROOT, PipelineConfig

RUNTIME = lambda_.Runtime.PYTHON_3_14
ARCHITECTURE = lambda_.Architecture.ARM_64
METRICS_NAMESPACE = "ImmutableAmiPipeline"
# *.egg-info: the metadata of the editable install (pyproject.toml), written beside the code, never deployed
LAMBDA_CODE_EXCLUDES = ["**/__pycache__", "**/*.pyc", "requirements.txt", "*.egg-info"]
# The requirements the tests install: the Powertools they run is the one the functions get.
POWERTOOLS_REQUIREMENTS = PROJECT_ROOT / "requirements-dev.txt"
_POWERTOOLS_PIN = re.compile(r"^aws-lambda-powertools(?:\[[^\]]*\])?==(\d+\.\d+\.\d+)\s*(?:#.*)?$", re.MULTILINE)


def pinned_powertools_version(requirements: Path = POWERTOOLS_REQUIREMENTS) -> str:
    """The one exact `aws-lambda-powertools==X.Y.Z` pin of the requirements file."""
    pins = _POWERTOOLS_PIN.findall(requirements.read_text(encoding="utf-8"))
    if len(pins) != 1:
        raise RuntimeError(
            f"{requirements.name} must pin aws-lambda-powertools exactly once (aws-lambda-powertools[parser]==X.Y.Z): "
            f"the functions' layer is that release; found {pins or 'no pin'}"
        )
    return str(pins[0])


def powertools_layer_parameter(version: str) -> str:
    """Powertools' public SSM parameter holding the ARN of its layer `version` for our runtime and architecture.

    "/aws/service/powertools/python/<arch>/<runtime>/<version>", e.g. .../arm64/python3.14/3.37.0 (the Python
    version keeps its period; `latest` also exists but follows every release, so it is not used):
    https://docs.aws.amazon.com/powertools/python/latest/getting-started/install/#using-ssm-parameter-store
    Published in the commercial partition only (stacks/config_sections.py refuses other partitions).
    """
    return f"/aws/service/powertools/python/{ARCHITECTURE.name}/{RUNTIME.name}/{version}"


def powertools_layer_arn(version: str) -> str:
    """The layer ARN as a `{{resolve:ssm:...}}` dynamic reference, the form the Powertools docs give for a Lambda
    function's Layers (same page); CloudFormation resolves it in each stack operation, and a change set shows the
    value it resolved to (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/dynamic-references-ssm.html)."""
    return CfnDynamicReference(CfnDynamicReferenceService.SSM, powertools_layer_parameter(version)).to_string()


def retention(days: int) -> logs.RetentionDays:
    """CloudWatch's retention periods, in the order both LOG_RETENTION_DAYS and the enum list them."""
    periods = [r for r in logs.RetentionDays if r is not logs.RetentionDays.INFINITE]
    return dict(zip(LOG_RETENTION_DAYS, periods, strict=True))[days]


def camel(step: str) -> str:
    """The construct id of a step's function, role and log group ("prune_images" → "PruneImages")."""
    return "".join(part.capitalize() for part in step.split("_"))


def python_function(
    scope: Construct,
    *,
    step: str,
    handler: str,
    config: PipelineConfig,
    timeout_seconds: int,
    memory_mb: int = 256,
    environment: dict[str, str] | None = None,
    dead_letter_queue: sqs.IQueue | None = None,
    reserved_concurrency: int | None = None,
    unreserved_reason: str = "Invoked only by this workflow, bounded by its executions and Map concurrency",
) -> lambda_.Function:
    """The function of `lambdas/<step>/` whose entry point is `handler` ("<step>.handler.lambda_handler").

    `dead_letter_queue` for a function invoked asynchronously (by EventBridge): what still fails after Lambda's
    own retries lands there. `reserved_concurrency` for a function the public can invoke; without one,
    `unreserved_reason` says why none is needed (checkov CKV_AWS_115)."""
    name = camel(step)
    log_group = logs.LogGroup(
        scope, f"{name}Logs", retention=retention(config.log_retention_days), removal_policy=RemovalPolicy.DESTROY
    )
    skip(
        log_group,
        "CloudWatch Logs encrypts log data at rest by default; these logs hold no secrets and no task tokens",
        "CKV_AWS_158",
    )
    role = iam.Role(
        scope,
        f"{name}Role",
        assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
        description=f"{config.application} {step} (least privilege, no managed policies)",
    )
    log_group.grant_write(role)
    layer_id = "PowertoolsLayer"
    layer = scope.node.try_find_child(layer_id) or lambda_.LayerVersion.from_layer_version_arn(
        scope, layer_id, powertools_layer_arn(pinned_powertools_version())
    )
    function = lambda_.Function(
        scope,
        name,
        description=f"{config.application}: {step}",
        runtime=RUNTIME,
        architecture=ARCHITECTURE,
        handler=handler,
        code=lambda_.Code.from_asset(str(PROJECT_ROOT / "lambdas"), exclude=LAMBDA_CODE_EXCLUDES),
        layers=[layer],  # type: ignore[list-item]
        role=role,
        log_group=log_group,
        logging_format=lambda_.LoggingFormat.JSON,
        tracing=lambda_.Tracing.ACTIVE,
        timeout=Duration.seconds(timeout_seconds),
        memory_size=memory_mb,
        environment={
            "POWERTOOLS_SERVICE_NAME": config.application,
            "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
            "POWERTOOLS_LOG_LEVEL": "INFO",
            **(environment or {}),
        },
        dead_letter_queue=dead_letter_queue,
        reserved_concurrent_executions=reserved_concurrency,
    )
    _skip_checks(function, dead_letter_queue=dead_letter_queue)
    if reserved_concurrency is None:
        skip(function, unreserved_reason, "CKV_AWS_115")
    return function


def _skip_checks(function: lambda_.Function, *, dead_letter_queue: sqs.IQueue | None) -> None:
    """The checkov checks that do not apply to this project's functions, each with its reason."""
    skip(
        function,
        "Calls only AWS APIs at their public endpoints and reaches no VPC resource; a VPC adds NAT or endpoints only",
        "CKV_AWS_117",
    )
    skip(
        function,
        "The environment holds configuration, no secrets (those stay in Secrets Manager); Lambda encrypts it at rest",
        "CKV_AWS_173",
    )
    if dead_letter_queue is None:
        # A dead-letter queue receives only asynchronous invocations' failures
        # (https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html#invocation-dlq).
        skip(
            function,
            "Invoked synchronously (a Step Functions task or the Function URL), whose caller retries or catches",
            "CKV_AWS_116",
        )
