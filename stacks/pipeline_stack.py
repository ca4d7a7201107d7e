"""The one stack: it only wires the constructs together and makes the grants between them."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from stacks.approvals import Approvals
from stacks.config import PipelineConfig
from stacks.deploy_workflow import DeployWorkflow
from stacks.example_fleet import ExampleFleet
from stacks.image_builder import ImageBuilderPipelines
from stacks.observability import Observability
from stacks.recycle_bin import RecycleBin
from stacks.step_grants import StepContext
from stacks.steps import wire_steps
from stacks.triggers import Triggers


class PipelineStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: PipelineConfig, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        images = ImageBuilderPipelines(self, "Images", config=config)
        workflow = DeployWorkflow(self, "Workflow", config=config)
        triggers = Triggers(self, "Triggers", config=config, state_machine=workflow.state_machine)
        Observability(self, "Observability", config=config, state_machine=workflow.state_machine, topic=workflow.topic)
        RecycleBin(self, "RecycleBin", config=config)
        if config.example_fleet.enabled:
            ExampleFleet(self, "ExampleFleet", config=config, topic=workflow.topic)

        # Each step's environment and IAM, from its entry in stacks/steps.py (some name the image pipelines).
        wire_steps(StepContext(config=config, workflow=workflow, images=images))
        if triggers.webhook_function:
            workflow.state_machine.grant_start_execution(triggers.webhook_function)

        Approvals(self, "Approvals", table=workflow.lock_table, state_machine_name=f"{config.application}-deploy")
        CfnOutput(self, "StateMachineArn", value=workflow.state_machine.state_machine_arn)
        CfnOutput(self, "NotificationTopicArn", value=workflow.topic.topic_arn)
        CfnOutput(self, "BasePipelineArn", value=images.base.pipeline.attr_arn)
        if triggers.webhook_url:
            CfnOutput(self, "GitHubWebhookUrl", value=triggers.webhook_url.url)
