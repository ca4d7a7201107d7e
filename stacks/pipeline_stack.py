"""The one stack: it only wires the constructs together and makes the grants between them."""

from __future__ import annotations

from typing import Any

from aws_cdk import Aws, CfnOutput, Stack
from aws_cdk import aws_iam as iam
from constructs import Construct

from stacks.config import PipelineConfig
from stacks.deploy_workflow import DeployWorkflow
from stacks.example_fleet import ExampleFleet
from stacks.image_builder import ImageBuilderPipelines
from stacks.nag import ACCOUNT, PARTITION, REGION, acknowledge, wildcard_resource
from stacks.observability import Observability
from stacks.triggers import Triggers


class PipelineStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: PipelineConfig, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        images = ImageBuilderPipelines(self, "Images", config=config)
        workflow = DeployWorkflow(self, "Workflow", config=config)
        triggers = Triggers(self, "Triggers", config=config, state_machine=workflow.state_machine)
        Observability(self, "Observability", config=config, state_machine=workflow.state_machine, topic=workflow.topic)
        if config.example_fleet.enabled:
            ExampleFleet(self, "ExampleFleet", config=config, topic=workflow.topic)

        # The bake steps: record the build source, start either pipeline, read the image it produced.
        start_build = workflow.functions["start_image_build"]
        images.source_parameter.grant_write(start_build)
        start_build.add_to_role_policy(
            iam.PolicyStatement(
                # GetImagePipeline: a dependent action of StartImagePipelineExecution (Service Authorization Reference)
                actions=["imagebuilder:StartImagePipelineExecution", "imagebuilder:GetImagePipeline"],
                resources=[images.base.pipeline.attr_arn, images.app.pipeline.attr_arn],
            )
        )
        start_build.add_environment("BUILD_SOURCE_PARAMETER", images.source_parameter.parameter_name)
        start_build.add_environment("BASE_PIPELINE_ARN", images.base.pipeline.attr_arn)
        start_build.add_environment("APP_PIPELINE_ARN", images.app.pipeline.attr_arn)
        check_build = workflow.functions["check_image_build"]
        image_arns = [
            f"arn:{Aws.PARTITION}:imagebuilder:{Aws.REGION}:{Aws.ACCOUNT_ID}:image/{parts.recipe_name}/*"
            for parts in (images.base, images.app)
        ]
        check_build.add_to_role_policy(
            iam.PolicyStatement(actions=["imagebuilder:ListImagePackages"], resources=image_arns)
        )
        check_build.add_to_role_policy(iam.PolicyStatement(actions=["ec2:DescribeImages"], resources=["*"]))
        for reader in (check_build, workflow.functions["register_wait"]):
            reader.add_to_role_policy(iam.PolicyStatement(actions=["imagebuilder:GetImage"], resources=image_arns))
            acknowledge(
                reader.role,  # type: ignore[arg-type]
                "Image build versions are created by the pipeline (recipe/version/build); the recipe name pins them",
                *(
                    wildcard_resource(f"arn:{PARTITION}:imagebuilder:{REGION}:{ACCOUNT}:image/{p.recipe_name}/*")
                    for p in (images.base, images.app)
                ),
            )
        # Tag the new AMI with commit, branch, trigger and execution (only this application's images).
        check_build.add_to_role_policy(
            iam.PolicyStatement(
                actions=["ec2:CreateTags"],
                resources=[f"arn:{Aws.PARTITION}:ec2:{Aws.REGION}::image/*"],
                conditions={"StringEquals": {"aws:ResourceTag/immutable-ami:application": config.application}},
            )
        )
        if triggers.webhook_function:
            workflow.state_machine.grant_start_execution(triggers.webhook_function)

        CfnOutput(self, "StateMachineArn", value=workflow.state_machine.state_machine_arn)
        CfnOutput(self, "NotificationTopicArn", value=workflow.topic.topic_arn)
        CfnOutput(self, "BasePipelineArn", value=images.base.pipeline.attr_arn)
        CfnOutput(self, "AppPipelineArn", value=images.app.pipeline.attr_arn)
        if triggers.webhook_url:
            CfnOutput(self, "GitHubWebhookUrl", value=triggers.webhook_url.url)
