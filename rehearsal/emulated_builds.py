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


class ImageBuilderEmulation(EmulationState):
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
        self.builds[arn] = Build(arn, pipeline, statuses, sim_start=self.sim_now())
        self._build_tokens[token] = arn
        self.log(f"image build started: {pipeline} pipeline (build {len(self.builds)})")
        return _ok({"requestId": token, "clientToken": token, "imageBuildVersionArn": arn})

    def _get_image(self, params: dict[str, Any]) -> Any:
        build = self.builds.get(params["imageBuildVersionArn"])
        if build is None:
            return _error("ResourceNotFoundException", "image not found")
        build.calls += 1
        if self.timed:
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
        }
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
        self.log(f"image build AVAILABLE: {build.pipeline} AMI {ami.id} (snapshot {ami.ebs_snapshot.id})")
        return str(ami.id)
