"""The one stack: it only wires the constructs together and makes the grants between them."""

from __future__ import annotations

from typing import Any

from aws_cdk import Aws, CfnOutput, Stack
from aws_cdk import aws_iam as iam
from constructs import Construct

from shared import tags as tag_keys
from shared.recipes import app_recipe_name_pattern
from stacks.approvals import Approvals
from stacks.config import PipelineConfig
from stacks.deploy_workflow import DeployWorkflow
from stacks.example_fleet import ExampleFleet
from stacks.image_builder import IMAGE_TESTS_TIMEOUT_MINUTES, ImageBuilderPipelines
from stacks.nag import ACCOUNT, PARTITION, REGION, acknowledge, wildcard_resource
from stacks.observability import Observability
from stacks.recycle_bin import RecycleBin
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

        self._grant_bakes(config, images, workflow)
        if triggers.webhook_function:
            workflow.state_machine.grant_start_execution(triggers.webhook_function)

        Approvals(self, "Approvals", table=workflow.lock_table, state_machine_name=f"{config.application}-deploy")
        CfnOutput(self, "StateMachineArn", value=workflow.state_machine.state_machine_arn)
        CfnOutput(self, "NotificationTopicArn", value=workflow.topic.topic_arn)
        CfnOutput(self, "BasePipelineArn", value=images.base.pipeline.attr_arn)
        if triggers.webhook_url:
            CfnOutput(self, "GitHubWebhookUrl", value=triggers.webhook_url.url)

    def _grant_bakes(self, config: PipelineConfig, images: ImageBuilderPipelines, workflow: DeployWorkflow) -> None:
        """The bake steps: start the base pipeline, make an app recipe and image per bake, read, tag, cancel."""
        app = config.application
        arn = f"arn:{Aws.PARTITION}:imagebuilder:{Aws.REGION}:{Aws.ACCOUNT_ID}"
        nag_arn = f"arn:{PARTITION}:imagebuilder:{REGION}:{ACCOUNT}"
        # An image's ARN is image/<recipe name>/<recipe version>/<build number>; app recipes are <app>-app-<digest>,
        # matched to the digest's exact length so no other application's recipes or images match.
        bakes = app_recipe_name_pattern(images.app.recipe_name)
        image_arns = [f"{arn}:image/{images.base.recipe_name}/*", f"{arn}:image/{bakes}/*"]
        nag_images = [
            wildcard_resource(f"{nag_arn}:image/{images.base.recipe_name}/*"),
            wildcard_resource(f"{nag_arn}:image/{bakes}/*"),
        ]
        app_recipes = f"{arn}:image-recipe/{bakes}/*"

        start_build = workflow.functions["start_image_build"]
        statements = [
            # Service Authorization Reference, EC2 Image Builder: GetImagePipeline is a dependent action of
            # StartImagePipelineExecution; GetComponent and GetImage of CreateImageRecipe (its components and
            # parent); GetImageRecipe, GetInfrastructureConfiguration and GetDistributionConfiguration of
            # CreateImage; TagResource of both when they tag.
            iam.PolicyStatement(
                actions=["imagebuilder:StartImagePipelineExecution", "imagebuilder:GetImagePipeline"],
                resources=[images.base.pipeline.attr_arn],
            ),
            iam.PolicyStatement(
                actions=["imagebuilder:CreateImageRecipe", "imagebuilder:GetImageRecipe", "imagebuilder:TagResource"],
                resources=[app_recipes],
            ),
            iam.PolicyStatement(actions=["imagebuilder:GetComponent"], resources=images.app.component_arns),
            iam.PolicyStatement(
                actions=["imagebuilder:CreateImage", "imagebuilder:TagResource"], resources=[image_arns[1]]
            ),
            iam.PolicyStatement(
                actions=["imagebuilder:GetInfrastructureConfiguration"],
                resources=[images.app.infrastructure.attr_arn],
            ),
            iam.PolicyStatement(
                actions=["imagebuilder:GetDistributionConfiguration"], resources=[images.app.distribution.attr_arn]
            ),
        ]
        for statement in statements:
            start_build.add_to_role_policy(statement)
        acknowledge(
            start_build.role,  # type: ignore[arg-type]
            "Each bake creates its own recipe and image, named <app>-app-<digest>: the prefix pins them to this app",
            wildcard_resource(f"{nag_arn}:image-recipe/{bakes}/*"),
            *nag_images[1:],
        )
        start_build.add_environment("BASE_PIPELINE_ARN", images.base.pipeline.attr_arn)
        start_build.add_environment("APP_RECIPE", images.app_recipe_json())
        start_build.add_environment("INFRASTRUCTURE_ARN", images.app.infrastructure.attr_arn)
        start_build.add_environment("APP_DISTRIBUTION_ARN", images.app.distribution.attr_arn)
        start_build.add_environment("IMAGE_TESTS_TIMEOUT_MINUTES", str(IMAGE_TESTS_TIMEOUT_MINUTES))

        check_build = workflow.functions["check_image_build"]
        check_build.add_to_role_policy(
            iam.PolicyStatement(
                actions=["imagebuilder:ListImagePackages", "imagebuilder:CancelImageCreation"], resources=image_arns
            )
        )
        check_build.add_to_role_policy(iam.PolicyStatement(actions=["ec2:DescribeImages"], resources=["*"]))
        for reader in (check_build, workflow.functions["register_wait"]):
            reader.add_to_role_policy(iam.PolicyStatement(actions=["imagebuilder:GetImage"], resources=image_arns))
            acknowledge(
                reader.role,  # type: ignore[arg-type]
                "Image build versions are created per build (recipe/version/build); the recipe name pins them",
                *nag_images,
            )
        # Tag every copy of the new AMI (this region and build.extraRegions), only this application's images.
        regions = [Aws.REGION, *config.build.extra_regions]
        check_build.add_to_role_policy(
            iam.PolicyStatement(
                actions=["ec2:CreateTags"],
                resources=[f"arn:{Aws.PARTITION}:ec2:{region}::image/*" for region in regions],
                conditions={"StringEquals": {"aws:ResourceTag/immutable-ami:application": app}},
            )
        )
        # ... and each copy's snapshots, which Image Builder leaves untagged (its AmiTags go on the AMI): the prune may
        # delete only snapshots with this application's tag. A snapshot's tags are unknown before it exists, so the
        # strongest conditions the EC2 SAR offers for CreateTags on snapshot/* are the request's own
        # (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonec2.html: CreateTags,
        # aws:RequestTag/${TagKey}, aws:TagKeys, ec2:CreateAction; snapshot resource: aws:ResourceTag/${TagKey}):
        # the application tag must be this application, only this project's keys may be written, and a snapshot
        # may be tagged only while it has no application tag or already has ours, so another application's
        # snapshot can never be re-tagged into ours. ec2:CreateAction names a create-with-tags call: this is none.
        snapshot_arns = [f"arn:{Aws.PARTITION}:ec2:{region}::snapshot/*" for region in regions]
        snapshot_keys = [  # what check_image_build.logic writes: image_tags and the static two
            tag_keys.APPLICATION, tag_keys.PIPELINE, tag_keys.COMMIT, tag_keys.BRANCH, tag_keys.TRIGGER,
            tag_keys.EXECUTION, tag_keys.BASE_IMAGE, tag_keys.IMAGE_BUILD, tag_keys.REPOSITORY, tag_keys.BUILD_TIME,
        ]  # fmt: skip
        request_tag, resource_tag = f"aws:RequestTag/{tag_keys.APPLICATION}", f"aws:ResourceTag/{tag_keys.APPLICATION}"
        only_our_keys = {"ForAllValues:StringEquals": {"aws:TagKeys": snapshot_keys}}
        for sid, conditions in (
            (  # a snapshot with no application tag yet: the new AMI's
                "TagUntaggedSnapshotsOfTheNewAmi",
                {"StringEquals": {request_tag: app}, "Null": {resource_tag: "true"}, **only_our_keys},
            ),
            (  # one already ours (a repeated check): never another application's
                "RetagOwnSnapshots",
                {"StringEquals": {request_tag: app, resource_tag: app}, **only_our_keys},
            ),
        ):
            check_build.add_to_role_policy(
                iam.PolicyStatement(sid=sid, actions=["ec2:CreateTags"], resources=snapshot_arns, conditions=conditions)
            )
        acknowledge(
            check_build.role,  # type: ignore[arg-type]
            "Snapshot ids are made by each bake; tagging needs our application tag and only our keys in the request",
            *(wildcard_resource(f"arn:{PARTITION}:ec2:{r}::snapshot/*") for r in [REGION, *config.build.extra_regions]),
        )
        if config.build.extra_regions:  # this region's image/* is acknowledged with the workflow's grants
            acknowledge(
                check_build.role,  # type: ignore[arg-type]
                "Tagging the AMI copies of build.extraRegions is conditioned on this application's tag",
                *(wildcard_resource(f"arn:{PARTITION}:ec2:{region}::image/*") for region in config.build.extra_regions),
            )
