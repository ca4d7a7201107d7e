"""EC2 Image Builder: components, the base recipe and pipeline, infrastructure and distributions.

The base image comes from a pipeline (recipe, infrastructure, distribution) CloudFormation creates.

The app image has no recipe in the template: the start_image_build step creates one per bake
(CreateImageRecipe, then CreateImage) whose parent is the exact base AMI the bake starts from and whose
component parameters hold the commit, branch and repository. A recipe version is immutable, so nothing
another execution does can change what a running bake builds; and no recipe names a base image that may
not exist yet, so `cdk deploy` succeeds on a fresh account (the first deployment bakes the base first).
The stack hands the step the app recipe's template (APP_RECIPE: the components, their static parameters)
and the infrastructure and distribution configurations.

Component and base recipe versions come from the version ledger (stacks/image_versions.py): any change
of what defines one gives it a higher version, so CloudFormation never replaces one with its own name
and version. Neither image has a schedule of its own: the daily base rebuild is a state machine run
(`rebuild-base`), so the app image is rebuilt on the new base and rolled out, not just baked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aws_cdk import Aws, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_imagebuilder as imagebuilder
from constructs import Construct

from shared.tags import APPLICATION as APPLICATION_TAG
from shared.tags import PIPELINE as PIPELINE_TAG
from stacks.build_instance_role import build_instance_role
from stacks.config import PROJECT_ROOT, PipelineConfig
from stacks.image_versions import VersionLedger

ANSIBLE_COMPONENT = "imagebuilder/components/ansible-playbook.yml"
IMAGE_TESTS_TIMEOUT_MINUTES = 120
# The app components whose parameters the start_image_build step fills in for each bake.
FILLED_COMPONENTS = {"app-install": "install", "app-test": "test"}


@dataclass(frozen=True)
class PipelineParts:
    """What the workflow needs to know about one pipeline."""

    pipeline: imagebuilder.CfnImagePipeline
    recipe_name: str
    latest_ami_parameter_name: str


def _canonical(value: object) -> str:
    """The text a version is keyed on: sorted JSON of what CloudFormation replaces the resource for."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _fill_of(ref: str) -> str | None:
    """Which per-bake values start_image_build adds to a local component's parameters (None: none)."""
    if ref.startswith(("arn:", "aws:")):
        return None
    return FILLED_COMPONENTS.get(Path(ref).stem)


@dataclass(frozen=True)
class AppBake:
    """What the start_image_build step needs to bake an app image: the recipe template and where it builds."""

    recipe_name: str  # the prefix of every per-bake recipe name (<app>-app-<digest>)
    recipe_template: dict[str, Any]  # APP_RECIPE (holds tokens: render with Stack.to_json_string)
    component_arns: list[str]
    infrastructure: imagebuilder.CfnInfrastructureConfiguration
    distribution: imagebuilder.CfnDistributionConfiguration
    latest_ami_parameter_name: str


class ImageBuilderPipelines(Construct):
    """The base image pipeline, the app image's components and distribution, one least-privilege build profile."""

    def __init__(self, scope: Construct, construct_id: str, *, config: PipelineConfig) -> None:
        super().__init__(scope, construct_id)
        self._config = config
        app = config.application
        # Versions come from the committed ledger imagebuilder/versions.json (stacks/image_versions.py).
        self._versions = VersionLedger.load()
        self._component_versions: dict[str, str] = {}  # local component file -> its version
        self.instance_role = build_instance_role(self, config=config)
        infrastructure = self._build_infrastructure(self.instance_role)

        base_components = list(config.base_image.components)
        if config.base_image.ansible_playbook:
            base_components.append(ANSIBLE_COMPONENT)
        self.base = self._build_pipeline(
            kind="base",
            parent_image=self._parent_image(config.base_image.parent_image),
            component_refs=base_components,
            version=config.base_image.version,
            infrastructure=infrastructure,
        )
        app_refs = [*config.app_image.components, *config.app_image.test_components]
        components = [(ref, self._component(ref, "app")) for ref in app_refs]
        distribution, parameter_name = self._distribution("app")
        self.app = AppBake(
            recipe_name=f"{app}-app",
            recipe_template={
                "name": f"{app}-app",
                "version": config.app_image.version,
                "components": [
                    {
                        "arn": component.component_arn,
                        "parameters": {p.name: p.value[0] for p in self._component_parameters(ref)},
                        "fill": _fill_of(ref),
                    }
                    for ref, component in components
                ],
            },
            component_arns=[str(component.component_arn) for _, component in components],
            infrastructure=infrastructure,
            distribution=distribution,
            latest_ami_parameter_name=parameter_name,
        )
        self._versions.save()

    def app_recipe_json(self) -> str:
        """APP_RECIPE for the start_image_build step (component ARNs resolved by CloudFormation)."""
        return Stack.of(self).to_json_string(self.app.recipe_template)

    # -- parts -------------------------------------------------------------------------------

    def _build_infrastructure(self, role: iam.Role) -> imagebuilder.CfnInfrastructureConfiguration:
        config = self._config
        profile = iam.CfnInstanceProfile(self, "BuildInstanceProfile", roles=[role.role_name])
        logging = None
        if config.build.logs_bucket:
            logging = imagebuilder.CfnInfrastructureConfiguration.LoggingProperty(
                s3_logs=imagebuilder.CfnInfrastructureConfiguration.S3LogsProperty(
                    s3_bucket_name=config.build.logs_bucket, s3_key_prefix=f"image-builder/{config.application}"
                )
            )
        instance_types = sorted({*config.base_image.build_instance_types, *config.app_image.build_instance_types})
        infrastructure = imagebuilder.CfnInfrastructureConfiguration(
            self,
            "Infrastructure",
            name=f"{config.application}-build",
            description="Build and test instances: IMDSv2 only, terminated on failure",
            instance_profile_name=profile.ref,
            instance_types=instance_types,
            terminate_instance_on_failure=True,
            subnet_id=config.build.subnet_id,
            security_group_ids=list(config.build.security_group_ids) or None,
            logging=logging,
            instance_metadata_options=imagebuilder.CfnInfrastructureConfiguration.InstanceMetadataOptionsProperty(
                http_tokens="required", http_put_response_hop_limit=2
            ),
            resource_tags={APPLICATION_TAG: config.application},
        )
        infrastructure.add_resource_dependency(profile)
        return infrastructure

    def _parent_image(self, parent: str) -> str:
        if parent.startswith(("ami-", "arn:", "ssm:")):
            return parent
        return f"arn:{Aws.PARTITION}:imagebuilder:{Aws.REGION}:aws:image/{parent}/x.x.x"

    def _component(self, ref: str, kind: str) -> imagebuilder.CfnImageRecipe.ComponentConfigurationProperty:
        if ref.startswith("arn:"):
            arn = ref
        elif ref.startswith("aws:"):
            arn = f"arn:{Aws.PARTITION}:imagebuilder:{Aws.REGION}:aws:component/{ref.removeprefix('aws:')}/x.x.x"
        else:
            data = (PROJECT_ROOT / ref).read_text(encoding="utf-8")
            stem = Path(ref).stem
            name, description, change = f"{self._config.application}-{stem}", f"{stem} ({ref})", "content changed"
            # Data, Description, ChangeDescription and Platform all replace the component:
            # https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-imagebuilder-component.html
            content = {"data": data, "description": description, "changeDescription": change, "platform": "Linux"}
            version = self._versions.version(name, "1.0.0", _canonical(content))
            self._component_versions[ref] = version
            component = imagebuilder.CfnComponent(
                self,
                f"Component-{kind}-{stem}",
                name=name,
                platform="Linux",
                version=version,
                data=data,
                description=description,
                change_description=change,
            )
            arn = component.attr_arn
        return imagebuilder.CfnImageRecipe.ComponentConfigurationProperty(
            component_arn=arn, parameters=self._component_parameters(ref) or None
        )

    def _component_parameters(self, ref: str) -> list[imagebuilder.CfnImageRecipe.ComponentParameterProperty]:
        param = imagebuilder.CfnImageRecipe.ComponentParameterProperty
        stem = Path(ref).stem if not ref.startswith(("arn:", "aws:")) else ""
        config = self._config
        # app-install and app-test also get the bake's source, per bake, from start_image_build.
        if stem == "app-install":
            return [param(name="InstallScript", value=[config.app_image.install_script])]
        if stem == "app-test":
            return [param(name="TestScript", value=[config.app_image.test_script])]
        if stem == "ansible-playbook" and config.base_image.ansible_playbook:
            return [param(name="PlaybookS3Uri", value=[config.base_image.ansible_playbook])]
        return []

    def _distribution(self, kind: str) -> tuple[imagebuilder.CfnDistributionConfiguration, str]:
        config = self._config
        parameter_name = f"/immutable-ami/{config.application}/{kind}/latest-ami"
        ami = {
            "Name": f"{config.application}-{kind}-{{{{ imagebuilder:buildDate }}}}",
            "Description": f"{config.application} {kind} image, built by the immutable AMI pipeline",
            "AmiTags": {APPLICATION_TAG: config.application, PIPELINE_TAG: kind},
        }
        if config.build.ami_kms_key_id:
            ami["KmsKeyId"] = config.build.ami_kms_key_id
        if config.build.share_with_accounts:
            ami["LaunchPermissionConfiguration"] = {"UserIds": list(config.build.share_with_accounts)}
        home = imagebuilder.CfnDistributionConfiguration.DistributionProperty(
            region=Aws.REGION,
            ami_distribution_configuration=ami,
            ssm_parameter_configurations=[
                imagebuilder.CfnDistributionConfiguration.SsmParameterConfigurationProperty(
                    parameter_name=parameter_name, data_type="aws:ec2:image"
                )
            ],
        )
        others = [
            imagebuilder.CfnDistributionConfiguration.DistributionProperty(
                region=region, ami_distribution_configuration=ami
            )
            for region in config.build.extra_regions
        ]
        distribution = imagebuilder.CfnDistributionConfiguration(
            self,
            f"Distribution-{kind}",
            name=f"{config.application}-{kind}",
            description=f"{kind} AMI: dated name, application tags, latest id in SSM {parameter_name}",
            distributions=[home, *others],
        )
        return distribution, parameter_name

    def _build_pipeline(
        self,
        *,
        kind: str,
        parent_image: str,
        component_refs: list[str],
        version: str,
        infrastructure: imagebuilder.CfnInfrastructureConfiguration,
    ) -> PipelineParts:
        app = self._config.application
        components = [self._component(ref, kind) for ref in component_refs]
        recipe_name = f"{app}-{kind}"
        description = f"{app} {kind} image"
        settings = imagebuilder.CfnImageRecipe.AdditionalInstanceConfigurationProperty(
            systems_manager_agent=imagebuilder.CfnImageRecipe.SystemsManagerAgentProperty(uninstall_after_build=False)
        )
        # What replaces the recipe (Components, ParentImage, Description, BlockDeviceMappings), with each local
        # component's version, since a new component version is a new ARN in Components:
        # https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-imagebuilder-imagerecipe.html
        # Tokens (partition, region) are resolved to their intrinsics, which are stable.
        resolve = Stack.of(self).resolve
        content = {
            "kind": kind,
            "parentImage": resolve(parent_image),
            "components": [
                {"ref": ref, "version": self._component_versions.get(ref), "parameters": resolve(c.parameters)}
                for ref, c in zip(component_refs, components, strict=True)
            ],
            "description": description,
            "blockDeviceMappings": None,
            "additionalInstanceConfiguration": resolve(settings),
        }
        recipe = imagebuilder.CfnImageRecipe(
            self,
            f"Recipe-{kind}",
            name=recipe_name,
            version=self._versions.version(recipe_name, version, _canonical(content)),
            parent_image=parent_image,
            components=components,
            description=description,
            additional_instance_configuration=settings,
        )
        distribution, parameter_name = self._distribution(kind)
        pipeline = imagebuilder.CfnImagePipeline(
            self,
            f"Pipeline-{kind}",
            name=f"{app}-{kind}",
            description=f"{app} {kind} image; started by the deploy state machine",
            image_recipe_arn=recipe.attr_arn,
            infrastructure_configuration_arn=infrastructure.attr_arn,
            distribution_configuration_arn=distribution.attr_arn,
            enhanced_image_metadata_enabled=True,
            image_tests_configuration=imagebuilder.CfnImagePipeline.ImageTestsConfigurationProperty(
                image_tests_enabled=True, timeout_minutes=IMAGE_TESTS_TIMEOUT_MINUTES
            ),
            status="ENABLED",
            tags={APPLICATION_TAG: app, PIPELINE_TAG: kind},
        )
        return PipelineParts(pipeline=pipeline, recipe_name=recipe_name, latest_ami_parameter_name=parameter_name)
