"""One way to build every Lambda function of the project: the latest Python runtime, arm64, JSON logs to
its own log group with retention, X-Ray, Powertools from its official public layer, code from `lambdas/`
(no Docker bundling: boto3 comes with the runtime) and its own role with no managed policies."""

from __future__ import annotations

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from stacks.config import LOG_RETENTION_DAYS, PROJECT_ROOT, PipelineConfig

RUNTIME = lambda_.Runtime.PYTHON_3_14
ARCHITECTURE = lambda_.Architecture.ARM_64
POWERTOOLS_ACCOUNT = "017000801446"  # the Powertools team's public layer account
METRICS_NAMESPACE = "ImmutableAmiPipeline"
LAMBDA_CODE_EXCLUDES = ["**/__pycache__", "**/*.pyc", "requirements.txt"]


def powertools_layer_arn(version: int) -> str:
    runtime = RUNTIME.name.replace(".", "")  # python3.14 → python314
    return (
        f"arn:{Aws.PARTITION}:lambda:{Aws.REGION}:{POWERTOOLS_ACCOUNT}:layer:"
        f"AWSLambdaPowertoolsPythonV3-{runtime}-arm64:{version}"
    )


def retention(days: int) -> logs.RetentionDays:
    """CloudWatch's retention periods, in the order both LOG_RETENTION_DAYS and the enum list them."""
    periods = [r for r in logs.RetentionDays if r is not logs.RetentionDays.INFINITE]
    return dict(zip(LOG_RETENTION_DAYS, periods, strict=True))[days]


def camel(step: str) -> str:
    return "".join(part.capitalize() for part in step.split("_"))


def python_function(
    scope: Construct,
    *,
    step: str,
    config: PipelineConfig,
    timeout_seconds: int,
    memory_mb: int = 256,
    environment: dict[str, str] | None = None,
) -> lambda_.Function:
    """The function whose handler is `lambdas/<step>/handler.py:lambda_handler`."""
    name = camel(step)
    log_group = logs.LogGroup(
        scope, f"{name}Logs", retention=retention(config.log_retention_days), removal_policy=RemovalPolicy.DESTROY
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
        scope, layer_id, powertools_layer_arn(config.powertools_layer_version)
    )
    return lambda_.Function(
        scope,
        name,
        description=f"{config.application}: {step}",
        runtime=RUNTIME,
        architecture=ARCHITECTURE,
        handler=f"{step}.handler.lambda_handler",
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
    )
