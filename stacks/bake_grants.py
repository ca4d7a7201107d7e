"""The IAM and environment of the bake steps (stacks/steps.py names each beside its entry): start the base
pipeline, make an app recipe and image per bake, read, tag, cancel."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Aws
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_

from shared import tags as tag_keys
from shared.recipes import app_recipe_name_pattern
from stacks.image_builder import IMAGE_TESTS_TIMEOUT_MINUTES
from stacks.nag import ACCOUNT, PARTITION, REGION, acknowledge, wildcard_resource
from stacks.step_grants import EC2_READ, StepContext, allow, grant_task_resume

IMAGEBUILDER = f"arn:{Aws.PARTITION}:imagebuilder:{Aws.REGION}:{Aws.ACCOUNT_ID}"
NAG_IMAGEBUILDER = f"arn:{PARTITION}:imagebuilder:{REGION}:{ACCOUNT}"


@dataclass(frozen=True)
class _Bakes:
    """An image's ARN is image/<recipe name>/<recipe version>/<build number>; app recipes are <app>-app-<digest>,
    matched to the digest's exact length so no other application's recipes or images match."""

    bakes: str  # the app recipes' name pattern
    base: str  # the base recipe's name

    @classmethod
    def of(cls, ctx: StepContext) -> _Bakes:
        return cls(app_recipe_name_pattern(ctx.images.app.recipe_name), ctx.images.base.recipe_name)

    @property
    def image_arns(self) -> list[str]:
        return [f"{IMAGEBUILDER}:image/{self.base}/*", f"{IMAGEBUILDER}:image/{self.bakes}/*"]

    @property
    def nag_images(self) -> list[str]:
        return [
            wildcard_resource(f"{NAG_IMAGEBUILDER}:image/{self.base}/*"),
            wildcard_resource(f"{NAG_IMAGEBUILDER}:image/{self.bakes}/*"),
        ]


def start_image_build_environment(ctx: StepContext) -> dict[str, str]:
    images = ctx.images
    return {
        "BASE_PIPELINE_ARN": images.base.pipeline.attr_arn,
        "APP_RECIPE": images.app_recipe_json(),
        "INFRASTRUCTURE_ARN": images.app.infrastructure.attr_arn,
        "APP_DISTRIBUTION_ARN": images.app.distribution.attr_arn,
        "IMAGE_TESTS_TIMEOUT_MINUTES": str(IMAGE_TESTS_TIMEOUT_MINUTES),
    }


def grant_start_image_build(ctx: StepContext, fn: lambda_.Function) -> None:
    # start_image_build reads the fleet too: a base rebuild re-bakes the commit the groups run.
    allow(fn, EC2_READ, ["*"])
    images, bakes = ctx.images, _Bakes.of(ctx)
    # Service Authorization Reference, EC2 Image Builder: GetImagePipeline is a dependent action of
    # StartImagePipelineExecution; GetComponent and GetImage of CreateImageRecipe (its components and
    # parent); GetImageRecipe, GetInfrastructureConfiguration and GetDistributionConfiguration of
    # CreateImage; TagResource of both when they tag.
    allow(
        fn,
        ["imagebuilder:StartImagePipelineExecution", "imagebuilder:GetImagePipeline"],
        [images.base.pipeline.attr_arn],
    )
    allow(
        fn,
        ["imagebuilder:CreateImageRecipe", "imagebuilder:GetImageRecipe", "imagebuilder:TagResource"],
        [f"{IMAGEBUILDER}:image-recipe/{bakes.bakes}/*"],
    )
    allow(fn, ["imagebuilder:GetComponent"], images.app.component_arns)
    allow(fn, ["imagebuilder:CreateImage", "imagebuilder:TagResource"], [bakes.image_arns[1]])
    allow(fn, ["imagebuilder:GetInfrastructureConfiguration"], [images.app.infrastructure.attr_arn])
    allow(fn, ["imagebuilder:GetDistributionConfiguration"], [images.app.distribution.attr_arn])
    acknowledge(
        fn.role,  # type: ignore[arg-type]
        "Each bake creates its own recipe and image, named <app>-app-<digest>: the prefix pins them to this app",
        wildcard_resource(f"{NAG_IMAGEBUILDER}:image-recipe/{bakes.bakes}/*"),
        *bakes.nag_images[1:],
    )


def grant_image_reads(ctx: StepContext, fn: lambda_.Function) -> None:
    """GetImage on this application's image build versions (check_image_build, register_wait)."""
    bakes = _Bakes.of(ctx)
    allow(fn, ["imagebuilder:GetImage"], bakes.image_arns)
    acknowledge(
        fn.role,  # type: ignore[arg-type]
        "Image build versions are created per build (recipe/version/build); the recipe name pins them",
        *bakes.nag_images,
    )


def grant_register_wait(ctx: StepContext, fn: lambda_.Function) -> None:
    """Waits: register_wait stores a task token per build/refresh/approval, and reads the image it waits for."""
    grant_task_resume(ctx, fn)
    ctx.workflow.topic.grant_publish(fn)
    allow(fn, ["autoscaling:DescribeInstanceRefreshes"], ["*"])
    grant_image_reads(ctx, fn)


def grant_check_image_build(ctx: StepContext, fn: lambda_.Function) -> None:
    config, app = ctx.config, ctx.config.application
    allow(fn, ["imagebuilder:ListImagePackages", "imagebuilder:CancelImageCreation"], _Bakes.of(ctx).image_arns)
    allow(fn, ["ec2:DescribeImages"], ["*"])
    grant_image_reads(ctx, fn)
    # Tag every copy of the new AMI (this region and build.extraRegions), only this application's images.
    regions = [Aws.REGION, *config.build.extra_regions]
    allow(
        fn,
        ["ec2:CreateTags"],
        [f"arn:{Aws.PARTITION}:ec2:{region}::image/*" for region in regions],
        conditions={"StringEquals": {"aws:ResourceTag/immutable-ami:application": app}},
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
        fn.add_to_role_policy(
            iam.PolicyStatement(sid=sid, actions=["ec2:CreateTags"], resources=snapshot_arns, conditions=conditions)
        )
    acknowledge(
        fn.role,  # type: ignore[arg-type]
        "Snapshot ids are made by each bake; tagging needs our application tag and only our keys in the request",
        *(wildcard_resource(f"arn:{PARTITION}:ec2:{r}::snapshot/*") for r in [REGION, *config.build.extra_regions]),
    )
    if config.build.extra_regions:  # this region's image/* is acknowledged with the workflow's grants
        acknowledge(
            fn.role,  # type: ignore[arg-type]
            "Tagging the AMI copies of build.extraRegions is conditioned on this application's tag",
            *(wildcard_resource(f"arn:{PARTITION}:ec2:{region}::image/*") for region in config.build.extra_regions),
        )
