"""EC2 Image Builder: start a pipeline execution, create a recipe and an image from it, read and cancel an
image build; EC2 CreateTags on the AMIs it made.

Error translation: a pipeline that does not exist becomes `ImagePipelineNotFound`, an image build that
does not exist `ImageBuildNotFound`, an AMI EC2 does not list yet (just distributed) `ImageNotReady`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from shared.aws.clients import adapter_client, regional_client
from shared.errors import ImageBuildNotFound, ImageNotReady, ImagePipelineNotFound

# Image Builder client tokens: botocore's model allows 1 to 64 characters, but the API Reference says
# "Length Constraints: Minimum length of 1. Maximum length of 36." (StartImagePipelineExecution, CreateImage,
# CreateImageRecipe, CancelImageCreation: https://docs.aws.amazon.com/imagebuilder/latest/APIReference/
# API_StartImagePipelineExecution.html). The service may enforce the shorter one: keep to it.
MAX_CLIENT_TOKEN_LENGTH = 36
_NOT_FOUND_CODES = frozenset({"ResourceNotFoundException", "InvalidRequestException"})
_AMI_NOT_VISIBLE_CODES = frozenset({"InvalidAMIID.NotFound", "InvalidAMIID.Unavailable"})
# CancelImageCreation "can only be used on images in a non-terminal state" (EC2 Image Builder API Reference,
# https://docs.aws.amazon.com/imagebuilder/latest/APIReference/API_CancelImageCreation.html); the docs do not
# name the error for an image that has ended. Read either of the two plausible ones as "nothing left to cancel".
_ALREADY_ENDED_CODES = frozenset({"ResourceInUseException", "InvalidRequestException"})
MAX_TAG_VALUE_LENGTH = 256  # EC2 tag values: at most 256 characters


@dataclass(frozen=True)
class OutputAmi:
    region: str
    image_id: str
    account_id: str | None


@dataclass(frozen=True)
class BuildImage:
    arn: str
    status: str  # Image Builder ImageStatus: PENDING ... AVAILABLE, FAILED, CANCELLED, ...
    reason: str
    failed_during: str | None  # failureContext.imageStatus: the stage that failed
    amis: tuple[OutputAmi, ...]
    parent_image: str | None = None  # imageRecipe.parentImage: what the build started from
    date_created: str | None = None  # when Image Builder created the image (the build time)


def _error(exc: ClientError) -> tuple[str, str]:
    error = exc.response.get("Error", {})
    return str(error.get("Code", "")), str(error.get("Message", ""))


class ImageBuilder:
    def __init__(self, imagebuilder: Any = None) -> None:
        self._imagebuilder = adapter_client(imagebuilder, "imagebuilder")

    def start_pipeline(self, pipeline_arn: str, client_token: str) -> str:
        """StartImagePipelineExecution; returns the image build version ARN.

        Image Builder answers a repeated client token with the original response, so a retried start
        returns the build the first call started instead of starting a second one.
        """
        if not 1 <= len(client_token) <= MAX_CLIENT_TOKEN_LENGTH:
            raise ValueError(f"clientToken must be 1 to {MAX_CLIENT_TOKEN_LENGTH} characters, got {len(client_token)}")
        try:
            response = self._imagebuilder.start_image_pipeline_execution(
                imagePipelineArn=pipeline_arn, clientToken=client_token
            )
        except ClientError as exc:
            code, message = _error(exc)
            if code == "ResourceNotFoundException":
                raise ImagePipelineNotFound(f"image pipeline {pipeline_arn}: {code}: {message}") from exc
            raise
        return str(response["imageBuildVersionArn"])

    def list_packages(self, build_version_arn: str) -> frozenset[tuple[str, str]]:
        """The (name, version) of every package installed in a build, as Image Builder's inventory recorded it."""
        packages: set[tuple[str, str]] = set()
        paginator = self._imagebuilder.get_paginator("list_image_packages")
        for page in paginator.paginate(imageBuildVersionArn=build_version_arn):
            for package in page.get("imagePackageList", []):
                packages.add((package.get("packageName", ""), package.get("packageVersion", "")))
        return frozenset(packages)

    def get_image(self, build_version_arn: str) -> BuildImage:
        try:
            response = self._imagebuilder.get_image(imageBuildVersionArn=build_version_arn)
        except ClientError as exc:
            code, message = _error(exc)
            if code in _NOT_FOUND_CODES:
                raise ImageBuildNotFound(f"image build {build_version_arn}: {code}: {message}") from exc
            raise
        image = response.get("image") or {}
        state = image.get("state") or {}
        recipe = image.get("imageRecipe") or {}
        return BuildImage(
            arn=str(image.get("arn", build_version_arn)),
            status=str(state.get("status", "")),
            reason=str(state.get("reason", "")),
            failed_during=(state.get("failureContext") or {}).get("imageStatus"),
            amis=tuple(
                OutputAmi(region=str(ami["region"]), image_id=str(ami["image"]), account_id=ami.get("accountId"))
                for ami in (image.get("outputResources") or {}).get("amis", [])
                if ami.get("region") and ami.get("image")
            ),
            parent_image=recipe.get("parentImage"),
            date_created=image.get("dateCreated"),
        )

    def create_recipe(self, request: Mapping[str, Any], arn: str) -> str:
        """CreateImageRecipe; returns the recipe's ARN (`arn`, the one the caller derived from name and version).

        A repeated client token returns the recipe the first call created (EC2 Image Builder API Reference,
        CreateImageRecipe, clientToken: "ensure idempotency of the request"). The caller derives the name
        from the execution and the commit, so `ResourceAlreadyExistsException` can only be this bake's own
        recipe from an earlier attempt whose answer was lost: it is used as is.
        """
        try:
            response = self._imagebuilder.create_image_recipe(**request)
        except ClientError as exc:
            code, _ = _error(exc)
            if code == "ResourceAlreadyExistsException":
                return arn
            raise
        return str(response.get("imageRecipeArn") or arn)

    def create_image(self, request: Mapping[str, Any]) -> str:
        """CreateImage (a build outside any pipeline); returns the image build version ARN. Idempotent on the
        client token like StartImagePipelineExecution."""
        response = self._imagebuilder.create_image(**request)
        return str(response["imageBuildVersionArn"])

    def cancel(self, build_version_arn: str, client_token: str) -> bool:
        """CancelImageCreation; False when the build has already ended and there is nothing to cancel."""
        try:
            self._imagebuilder.cancel_image_creation(imageBuildVersionArn=build_version_arn, clientToken=client_token)
        except ClientError as exc:
            code, _ = _error(exc)
            if code in _ALREADY_ENDED_CODES:
                return False
            raise
        return True


class ImageTags:
    """EC2 CreateTags on an AMI Image Builder distributed (idempotent: the same tags again change nothing).

    An AMI in another region (a copy for `build.extraRegions`) is tagged through that region's EC2 endpoint.
    """

    def __init__(self, ec2: Any = None, regional: Callable[[str], Any] | None = None) -> None:
        self._ec2 = adapter_client(ec2, "ec2")
        self._regional = regional or (lambda region: regional_client("ec2", region))
        self._home = getattr(getattr(self._ec2, "meta", None), "region_name", None)

    def _client_for(self, region: str | None) -> Any:
        if region is None or region == self._home:
            return self._ec2
        return adapter_client(self._regional(region), "ec2")

    def tag_image(self, image_id: str, tags: Mapping[str, str], region: str | None = None) -> None:
        if not tags:
            return
        try:
            self._client_for(region).create_tags(
                Resources=[image_id],
                Tags=[{"Key": key, "Value": value[:MAX_TAG_VALUE_LENGTH]} for key, value in tags.items()],
            )
        except ClientError as exc:
            code, message = _error(exc)
            if code in _AMI_NOT_VISIBLE_CODES:
                raise ImageNotReady(f"{image_id} is not visible to EC2 yet: {code}: {message}") from exc
            raise
