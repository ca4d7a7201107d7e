"""Image Builder, which moto lacks, played from the scenario: each GetImage of a build returns the next status of
`imageBuilder.<pipeline>`; on AVAILABLE a real AMI (with its snapshot) appears in moto."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rehearsal.emulation import ACCOUNT, REGION, EmulationState, _backends, _error, _ok

# EC2 Image Builder API Reference, "ImageState": a new image ends AVAILABLE, FAILED or CANCELLED.
BUILD_TERMINAL = {"AVAILABLE", "FAILED", "CANCELLED"}


@dataclass
class Build:
    arn: str
    pipeline: str
    statuses: list[str]
    calls: int = 0
    ami_id: str | None = None
    sim_start: float = 0.0
    recipe: dict[str, Any] | None = None  # CreateImage: the recipe it builds (parent, component parameters)
    created: str = ""  # dateCreated, ISO 8601
    cancelled: bool = False


class ImageBuilderEmulation(EmulationState):
    recipes: dict[str, dict[str, Any]]
    image_builder: dict[str, Any]
    _recipe_tokens: dict[str, str]
    baked_commits: dict[str, str | None]

    def _create_recipe(self, params: dict[str, Any]) -> Any:
        """CreateImageRecipe (EC2 Image Builder API Reference): idempotent on clientToken; a name and version
        that exists already is ResourceAlreadyExistsException; an AMI parent must exist in this region and be
        accessible ("If you enter an AMI ID ... you must have access to the AMI, and the AMI must be in the source
        Region"); components must exist (the template's: nothing else is in the emulated account)."""
        token = params["clientToken"]
        arn = (
            f"arn:aws:imagebuilder:{REGION}:{ACCOUNT}:image-recipe/{params['name'].lower()}/{params['semanticVersion']}"
        )
        if self._recipe_tokens.get(token) == arn:
            return _ok({"requestId": token, "clientToken": token, "imageRecipeArn": arn})
        if arn in self.recipes:
            return _error("ResourceAlreadyExistsException", f"the image recipe {arn} already exists")
        for component in params.get("components", []):
            if component["componentArn"] not in self.image_builder["components"]:
                return _error("ResourceNotFoundException", f"component {component['componentArn']} does not exist")
        parent = params["parentImage"]
        if parent.startswith("ami-"):
            ec2, _ = _backends()
            if parent not in ec2.amis:
                return _error("InvalidParameterValueException", f"the parent image {parent} does not exist")
        self.recipes[arn] = dict(params)
        self._recipe_tokens[token] = arn
        return _ok({"requestId": token, "clientToken": token, "imageRecipeArn": arn})

    def _create_image(self, params: dict[str, Any]) -> Any:
        """CreateImage: idempotent on clientToken; the recipe, infrastructure and distribution must exist."""
        token = params["clientToken"]
        if token in self._build_tokens:
            arn = self._build_tokens[token]
            return _ok({"requestId": token, "clientToken": token, "imageBuildVersionArn": arn})
        recipe = self.recipes.get(params.get("imageRecipeArn", ""))
        if recipe is None:
            return _error("ResourceNotFoundException", f"image recipe {params.get('imageRecipeArn')} does not exist")
        if params["infrastructureConfigurationArn"] not in self.image_builder["infrastructures"]:
            return _error("ResourceNotFoundException", "the infrastructure configuration does not exist")
        if params.get("distributionConfigurationArn") not in self.image_builder["distributions"]:
            return _error("ResourceNotFoundException", "the distribution configuration does not exist")
        statuses = list(self.scenario.get("imageBuilder", {}).get("app", ["BUILDING", "TESTING", "AVAILABLE"]))
        # The build version ARN of an output image: image/<recipe name>/<recipe version>/<build number>
        # (EC2 Image Builder User Guide, "Semantic versioning").
        arn = f"arn:aws:imagebuilder:{REGION}:{ACCOUNT}:image/{recipe['name'].lower()}/{recipe['semanticVersion']}/1"
        self.builds[arn] = Build(
            arn, "app", statuses, sim_start=self.sim_now(), recipe=recipe, created=self.sim_datetime().isoformat()
        )
        self._build_tokens[token] = arn
        self.log(f"image build started: app image of {self._commit_of(recipe)} (build {len(self.builds)})")
        return _ok({"requestId": token, "clientToken": token, "imageBuildVersionArn": arn})

    def _cancel_build(self, params: dict[str, Any]) -> Any:
        """CancelImageCreation: a build that has not ended becomes CANCELLED; one that has ended cannot be
        cancelled (the docs do not name the error: ResourceInUseException, "not in a state that allows this")."""
        build = self.builds.get(params["imageBuildVersionArn"])
        if build is None:
            return _error("ResourceNotFoundException", "image not found")
        current = build.statuses[0]
        if current in BUILD_TERMINAL or build.cancelled:
            return _error("ResourceInUseException", f"the image build has already ended ({current})")
        build.cancelled = True
        build.statuses = ["CANCELLED"]
        self.log(f"image build cancelled: {build.pipeline} ({build.arn.rsplit('/', 3)[-3]})")
        return _ok(
            {
                "requestId": params["clientToken"],
                "clientToken": params["clientToken"],
                "imageBuildVersionArn": build.arn,
            }
        )

    @staticmethod
    def _commit_of(recipe: dict[str, Any] | None) -> str | None:
        """The commit app-install checks out: its Commit component parameter (the emulated build runs it)."""
        for component in (recipe or {}).get("components", []):
            for parameter in component.get("parameters", []):
                if parameter["name"] == "Commit":
                    return str(parameter["value"][0])
        return None

    def _start_build(self, params: dict[str, Any]) -> Any:
        pipeline_arn = params["imagePipelineArn"]
        token = params["clientToken"]
        if token in self._build_tokens:  # Image Builder is idempotent on the client token
            arn = self._build_tokens[token]
            return _ok({"requestId": token, "clientToken": token, "imageBuildVersionArn": arn})
        known = self.pipelines.get(pipeline_arn)
        if known is None:  # the template's pipelines only (Image Builder API Reference: ResourceNotFoundException)
            return _error("ResourceNotFoundException", f"image pipeline {pipeline_arn} does not exist")
        pipeline, recipe = known
        statuses = list(self.scenario.get("imageBuilder", {}).get(pipeline, ["BUILDING", "TESTING", "AVAILABLE"]))
        # An image's ARN is image/<recipe name>/<recipe version>/<build number> (EC2 Image Builder User Guide,
        # "Semantic versioning": the build version ARN of an output image).
        arn = f"arn:aws:imagebuilder:{REGION}:{ACCOUNT}:image/{recipe}/{len(self.builds) + 1}"
        self.builds[arn] = Build(
            arn, pipeline, statuses, sim_start=self.sim_now(), created=self.sim_datetime().isoformat()
        )
        self._build_tokens[token] = arn
        self.log(f"image build started: {pipeline} pipeline (build {len(self.builds)})")
        return _ok({"requestId": token, "clientToken": token, "imageBuildVersionArn": arn})

    def _get_image(self, params: dict[str, Any]) -> Any:
        build = self.builds.get(params["imageBuildVersionArn"])
        if build is None:
            return _error("ResourceNotFoundException", "image not found")
        build.calls += 1
        if build.cancelled:
            status = "CANCELLED"
        elif self.timed:
            # Timed scenarios (benchmarks): BUILDING until its duration has passed in simulated time.
            done = self.sim_now() >= build.sim_start + float(self.scenario.get("buildSeconds", 1800))
            status = build.statuses[-1] if done else "BUILDING"
            if done:
                self._observed(("image", build.arn), build.sim_start + float(self.scenario.get("buildSeconds", 1800)))
        else:
            status = build.statuses.pop(0) if len(build.statuses) > 1 else build.statuses[0]
        image: dict[str, Any] = {
            "arn": build.arn,
            "name": f"{self.application}-{build.pipeline}",
            "state": {"status": status},
            "dateCreated": build.created,
        }
        if build.recipe is not None:
            image["imageRecipe"] = {"name": build.recipe["name"], "parentImage": build.recipe["parentImage"]}
        if status in {"FAILED", "CANCELLED"}:
            image["state"]["reason"] = f"emulated: build {status.lower()} (scenario)"
        if status == "AVAILABLE":
            if build.ami_id is None:
                build.ami_id = self._bake(build)
            image["outputResources"] = {"amis": [{"region": REGION, "image": build.ami_id, "name": "baked"}]}
        return _ok({"requestId": str(uuid.uuid4()), "image": image})

    def _list_packages(self, params: dict[str, Any]) -> Any:
        """Base builds install the packages of the world's base images, plus an update unless the
        scenario says the base did not change (`basePackages: "unchanged"`)."""
        arn = params["imageBuildVersionArn"]
        packages = [("kernel", "6.1.100-1"), ("openssl", "3.0.8-1")]
        if arn in self.builds and self.scenario.get("basePackages") != "unchanged":
            packages[1] = ("openssl", "3.0.8-2")
        return _ok({"imagePackageList": [{"packageName": n, "packageVersion": v} for n, v in packages]})

    def _bake(self, build: Build) -> str:
        ec2, _ = _backends()
        now = datetime.now(UTC)
        ami = ec2.create_image(
            self.builder_instance_id, f"{self.application}-{build.pipeline}-{now:%Y%m%d%H%M%S%f}", "baked", []
        )
        ami.creation_date = now.replace(tzinfo=None)
        ami.add_tag("immutable-ami:application", self.application)
        ami.add_tag("immutable-ami:pipeline", build.pipeline)
        # The Image Builder tags on every output AMI (User Guide, "Tag Image Builder output resources").
        ami.add_tag("CreatedBy", "EC2 Image Builder")
        ami.add_tag("Ec2ImageBuilderArn", build.arn)
        self.baked_commits[str(ami.id)] = self._commit_of(build.recipe)
        self.log(f"image build AVAILABLE: {build.pipeline} AMI {ami.id} (snapshot {ami.ebs_snapshot.id})")
        return str(ami.id)
