"""Image Builder, which moto lacks, played from the scenario: each GetImage of a build returns the next status of
`imageBuilder.<pipeline>` (`imageBuilder."app:<commit>"` for the app bake of one commit); on AVAILABLE a real AMI
(with its snapshot) appears in moto.

An app build runs its recipe's components as this project wrote them: it checks out the install component's
`Commit` (recorded in `baked_commits`, AMI id → commit, which the invariants compare with the AMI's tags) and fails
as app-install / app-test would when that commit is not a full SHA or the test component is given another one."""

from __future__ import annotations

import re
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
    number: int = 0  # the run's n-th build (the timeline names builds by it)
    seen_ended: float | None = None  # simulated seconds when GetImage first answered a terminal status
    failure: tuple[str, str] | None = None  # (stage, why) its own components fail it; None: the scenario's statuses

    @property
    def commit(self) -> str | None:
        """The commit the build checks out: the install component's Commit (None for the base image)."""
        return checked_out_commit(self.recipe)

    @property
    def parent(self) -> str | None:
        """The recipe's parent image (None for a pipeline build: the rehearsal does not model the base recipe)."""
        return None if self.recipe is None else str(self.recipe["parentImage"])

    def describe(self) -> str:
        """What the build makes, as the timeline says it."""
        if self.pipeline == "app" and self.recipe is not None:
            return f"app image of commit {self.commit} on {self.parent}"
        return f"{self.pipeline} image from the {self.pipeline} pipeline"


def _parameters(component: dict[str, Any]) -> dict[str, str]:
    return {str(p["name"]): str(p["value"][0]) for p in component.get("parameters", []) if p.get("value")}


def checked_out_commit(recipe: dict[str, Any] | None) -> str | None:
    """The Commit the checkout uses: the component that also takes the CloneUrl (app-install.yml's FetchSource
    checks out exactly `Commit`); without one, the first component with a Commit parameter."""
    components = [_parameters(c) for c in (recipe or {}).get("components", [])]
    checkout = next((p for p in components if "Commit" in p and "CloneUrl" in p), None)
    named = checkout or next((p for p in components if "Commit" in p), None)
    return named["Commit"] if named else None


FULL_SHA = re.compile(r"^[0-9a-f]{40}$")


def component_failure(recipe: dict[str, Any]) -> tuple[str, str] | None:
    """Where (the image's status then) and why this project's components fail the bake of `recipe`, or None.

    Not AWS behaviour but the components' own (imagebuilder/components/): app-install's CheckParameters refuses a
    Commit that is not a full SHA; app-test's BakedCommitIsTheRequestedOne fails when the commit the image records
    is not its own Commit parameter. A component that fails while it runs fails the image: it ends FAILED, its
    state's failureContext.componentFailure naming the component and the phase (EC2 Image Builder API Reference,
    "ImageState", "ImageFailureContext", "ComponentFailureContext";
    https://docs.aws.amazon.com/imagebuilder/latest/APIReference/API_ImageFailureContext.html). The emulation
    gives the reason and failureContext.imageStatus (the stage), not the component's details."""
    commit = checked_out_commit(recipe)
    if commit is None:
        return None
    if not FULL_SHA.match(commit):
        return "BUILDING", f"app-install: Commit must be a full commit SHA, got {commit!r}"
    others = {p["Commit"] for p in map(_parameters, recipe.get("components", [])) if "Commit" in p} - {commit}
    if others:
        return (
            "TESTING",
            f"app-test: the image carries commit {commit}, but the test was given {', '.join(sorted(others))}",
        )
    return None


# The API Reference's client token limit (botocore's model allows 64, so botocore would not catch a longer one).
MAX_CLIENT_TOKEN = 36


def _token_error(params: dict[str, Any]) -> Any:
    token = str(params.get("clientToken", ""))
    if not 1 <= len(token) <= MAX_CLIENT_TOKEN:
        # EC2 Image Builder API Reference (e.g. CreateImage): clientToken "Maximum length of 36". The docs do not
        # name the error; InvalidRequestException is the one every one of these operations declares.
        return _error("InvalidRequestException", f"clientToken is {len(token)} characters; at most 36")
    return None


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
        if (invalid := _token_error(params)) is not None:
            return invalid
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
                # CreateImageRecipe declares no ResourceNotFoundException (botocore's imagebuilder model): the docs do
                # not say which error a missing component gets; InvalidRequestException is declared.
                return _error("InvalidRequestException", f"component {component['componentArn']} does not exist")
        parent = params["parentImage"]
        if parent.startswith("ami-"):
            ec2, _ = _backends()
            if parent not in ec2.amis:
                # The error is not documented either: InvalidRequestException, as above.
                return _error("InvalidRequestException", f"the parent image {parent} does not exist")
        self.recipes[arn] = dict(params)
        self._recipe_tokens[token] = arn
        return _ok({"requestId": token, "clientToken": token, "imageRecipeArn": arn})

    def _create_image(self, params: dict[str, Any]) -> Any:
        """CreateImage: idempotent on clientToken; the recipe, infrastructure and distribution must exist."""
        if (invalid := _token_error(params)) is not None:
            return invalid
        token = params["clientToken"]
        if token in self._build_tokens:
            arn = self._build_tokens[token]
            return _ok({"requestId": token, "clientToken": token, "imageBuildVersionArn": arn})
        recipe = self.recipes.get(params.get("imageRecipeArn", ""))
        if recipe is None:
            # CreateImage declares no ResourceNotFoundException either (botocore's model); the docs name no error for
            # a missing recipe or configuration: InvalidRequestException, which it declares.
            return _error("InvalidRequestException", f"image recipe {params.get('imageRecipeArn')} does not exist")
        if params["infrastructureConfigurationArn"] not in self.image_builder["infrastructures"]:
            return _error("InvalidRequestException", "the infrastructure configuration does not exist")
        if params.get("distributionConfigurationArn") not in self.image_builder["distributions"]:
            return _error("InvalidRequestException", "the distribution configuration does not exist")
        # `imageBuilder."app:<commit>"` scripts the bake of one commit (a rebuild bakes several), else `app`.
        scripted = self.scenario.get("imageBuilder", {})
        default = scripted.get("app", ["BUILDING", "TESTING", "AVAILABLE"])
        statuses = list(scripted.get(f"app:{checked_out_commit(recipe)}", default))
        failure = component_failure(recipe)
        if failure is not None:  # the components fail it, whatever the scenario scripted
            statuses = ["BUILDING", "FAILED"]
        # The build version ARN of an output image: image/<recipe name>/<recipe version>/<build number>
        # (EC2 Image Builder User Guide, "Semantic versioning").
        arn = f"arn:aws:imagebuilder:{REGION}:{ACCOUNT}:image/{recipe['name'].lower()}/{recipe['semanticVersion']}/1"
        build = Build(
            arn,
            "app",
            statuses,
            sim_start=self.sim_now(),
            recipe=recipe,
            created=self.sim_datetime().isoformat(),
            number=len(self.builds) + 1,
            failure=failure,
        )
        self.builds[arn] = build
        self._build_tokens[token] = arn
        self.log(f"image build {build.number} started: {build.describe()}")
        if failure is not None:
            self.log(f"image build {build.number} will fail: {failure[1]}")
        return _ok({"requestId": token, "clientToken": token, "imageBuildVersionArn": arn})

    def _cancel_build(self, params: dict[str, Any]) -> Any:
        """CancelImageCreation "can only be used on images in a non-terminal state" (EC2 Image Builder API
        Reference, CancelImageCreation); the docs do not name the error for one that has ended: the emulation
        answers ResourceInUseException, one of the two the operation declares that could mean it."""
        if (invalid := _token_error(params)) is not None:
            return invalid
        build = self.builds.get(params["imageBuildVersionArn"])
        if build is None:  # CancelImageCreation declares no ResourceNotFoundException (botocore's model)
            return _error("InvalidRequestException", "image not found")
        current = build.statuses[0]
        if current in BUILD_TERMINAL or build.cancelled:
            return _error("ResourceInUseException", f"the image build has already ended ({current})")
        build.cancelled = True
        build.statuses = ["CANCELLED"]
        self.log(f"image build {build.number} cancelled: {build.describe()}")
        return _ok(
            {
                "requestId": params["clientToken"],
                "clientToken": params["clientToken"],
                "imageBuildVersionArn": build.arn,
            }
        )

    def bakes(self) -> list[dict[str, Any]]:
        """Every build of the run as the JSON's `bakes` reports it, in the order they started."""
        return [
            {
                "build": build.number,
                "pipeline": build.pipeline,
                "commit": build.commit,
                "parentImage": build.parent,
                "amiId": build.ami_id,
                "cancelled": build.cancelled,
                "startedAtSeconds": round(build.sim_start, 1),
                "seenEndedAtSeconds": None if build.seen_ended is None else round(build.seen_ended, 1),
            }
            for build in self.builds.values()
        ]

    def _start_build(self, params: dict[str, Any]) -> Any:
        if (invalid := _token_error(params)) is not None:
            return invalid
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
        build = Build(
            arn,
            pipeline,
            statuses,
            sim_start=self.sim_now(),
            created=self.sim_datetime().isoformat(),
            number=len(self.builds) + 1,
            # The pipeline's recipe as the template holds it: GetImage reports its parent (imageRecipe.parentImage).
            recipe={
                "name": recipe.split("/")[0],
                "semanticVersion": recipe.split("/")[-1],
                "parentImage": self.image_builder.get("parents", {}).get(pipeline_arn, ""),
                "components": [],
            },
        )
        self.builds[arn] = build
        self._build_tokens[token] = arn
        self.log(f"image build {build.number} started: {build.describe()}")
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
        if status in BUILD_TERMINAL and build.seen_ended is None:
            build.seen_ended = self.sim_now()
        image: dict[str, Any] = {
            "arn": build.arn,
            "name": f"{self.application}-{build.pipeline}",
            "state": {"status": status},
            "dateCreated": build.created,
        }
        if build.recipe is not None:
            image["imageRecipe"] = {"name": build.recipe["name"], "parentImage": build.recipe["parentImage"]}
        if status in {"FAILED", "CANCELLED"}:
            why = f"build {status.lower()} (scenario)"
            if status == "FAILED" and build.failure is not None:
                image["state"]["failureContext"] = {"imageStatus": build.failure[0]}
                why = build.failure[1]
            image["state"]["reason"] = f"emulated: {why}"
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
        self.baked_commits[str(ami.id)] = build.commit
        # Made when the wait is registered (the harness plays the build to its end at once); it ends later.
        left = self._remaining(build.sim_start, float(self.scenario.get("buildSeconds", 1800)))
        when = f" in {left / 60:.0f} min" if left >= 60 else ""
        made = f"{build.pipeline} AMI {ami.id} (snapshot {ami.ebs_snapshot.id})"
        self.log(f"image build {build.number} ends AVAILABLE{when}: {made}")
        return str(ami.id)
