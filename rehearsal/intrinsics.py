"""The emulated account's names for the stack's own resources, and the template's intrinsics resolved to them.

Only what the rehearsal needs is resolved: `Ref`, `Fn::GetAtt`, `Fn::Join`, `Fn::Sub` and `Fn::Select` of
this stack's resources and the pseudo parameters. Anything else (an import, a parameter, a condition)
fails with the path to it: a template the rehearsal cannot read faithfully is not rehearsed.

Physical names follow CloudFormation's rule for resources whose name the template leaves out: the stack
name, the logical id and a random suffix (AWS CloudFormation User Guide, "Name type"); the suffix here is
a hash of the logical id, so every rehearsal of a template sees the same names. Return values per type
follow each resource's "Return values" section in the AWS CloudFormation Template Reference.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from rehearsal.artifact import Artifact, ArtifactError


@dataclass(frozen=True)
class Account:
    partition: str = "aws"
    region: str = "eu-west-1"
    account: str = "123456789012"  # moto's default account

    def arn(self, service: str, resource: str, *, region: bool = True, account: bool = True) -> str:
        where = f"{self.region if region else ''}:{self.account if account else ''}"
        return f"arn:{self.partition}:{service}:{where}:{resource}"


class Resolver:
    """Names and ARNs of the stack's resources in the emulated account; `resolve()` turns intrinsics into strings."""

    def __init__(self, artifact: Artifact, account: Account) -> None:
        self.artifact = artifact
        self.account = account

    def physical_name(self, logical_id: str, max_length: int = 64) -> str:
        """An explicit name property where the type has one, else CloudFormation's generated name."""
        resource = self._resource(logical_id)
        explicit = {
            "AWS::Lambda::Function": "FunctionName",
            "AWS::DynamoDB::Table": "TableName",
            "AWS::SNS::Topic": "TopicName",
            "AWS::SSM::Parameter": "Name",
            "AWS::IAM::Role": "RoleName",
            "AWS::StepFunctions::StateMachine": "StateMachineName",
            "AWS::ImageBuilder::ImagePipeline": "Name",
            "AWS::ImageBuilder::Component": "Name",
            "AWS::ImageBuilder::ImageRecipe": "Name",
            "AWS::ImageBuilder::InfrastructureConfiguration": "Name",
            "AWS::ImageBuilder::DistributionConfiguration": "Name",
            "AWS::Logs::LogGroup": "LogGroupName",
            "AWS::CloudWatch::Alarm": "AlarmName",
            "AWS::Events::Rule": "Name",
            "AWS::SecretsManager::Secret": "Name",
            "AWS::SQS::Queue": "QueueName",
        }.get(resource["Type"])
        if explicit and isinstance(resource.get("Properties", {}).get(explicit), str):
            return str(resource["Properties"][explicit])
        suffix = hashlib.sha256(logical_id.encode()).hexdigest()[:12].upper()
        stem = f"{self.artifact.stack_name}-{logical_id}"[: max_length - len(suffix) - 1]
        return f"{stem}-{suffix}"

    def ref(self, logical_id: str) -> str:
        type_name = self._resource(logical_id)["Type"]
        if type_name in {
            "AWS::SNS::Topic",
            "AWS::ImageBuilder::ImagePipeline",
            "AWS::ImageBuilder::Component",
            "AWS::ImageBuilder::InfrastructureConfiguration",
            "AWS::ImageBuilder::DistributionConfiguration",
            "AWS::StepFunctions::StateMachine",
            "AWS::SecretsManager::Secret",
        }:
            return self.get_att(logical_id, "Arn")  # these types' Ref is their ARN
        if type_name == "AWS::SQS::Queue":
            return self.get_att(logical_id, "QueueUrl")  # a queue's Ref is its URL
        if type_name == "AWS::KMS::Key":
            return hashlib.sha256(logical_id.encode()).hexdigest()[:32]
        if type_name in {"AWS::Lambda::Function", "AWS::DynamoDB::Table", "AWS::SSM::Parameter", "AWS::IAM::Role",
                         "AWS::Logs::LogGroup", "AWS::CloudWatch::Alarm", "AWS::Events::Rule"}:  # fmt: skip
            return self.physical_name(logical_id)  # these types' Ref is their name
        raise ArtifactError(f"Ref {logical_id} ({type_name}) is not emulated")

    def _property(self, logical_id: str, name: str) -> str:
        value = self._resource(logical_id).get("Properties", {}).get(name)
        if not isinstance(value, str):
            raise ArtifactError(f"{logical_id}.{name}: not a literal string")
        return value

    def get_att(self, logical_id: str, attribute: str) -> str:
        type_name = self._resource(logical_id)["Type"]
        name = self.physical_name(logical_id)
        a = self.account
        arns = {
            "AWS::Lambda::Function": lambda: a.arn("lambda", f"function:{name}"),
            "AWS::DynamoDB::Table": lambda: a.arn("dynamodb", f"table/{name}"),
            "AWS::SNS::Topic": lambda: a.arn("sns", name),
            "AWS::IAM::Role": lambda: a.arn("iam", f"role/{name}", region=False),
            "AWS::StepFunctions::StateMachine": lambda: a.arn("states", f"stateMachine:{name}"),
            "AWS::ImageBuilder::ImagePipeline": lambda: a.arn("imagebuilder", f"image-pipeline/{name}"),
            # Image Builder ARNs (EC2 Image Builder User Guide, "Semantic versioning"): a component's ends in its
            # version and build number, a recipe's in its version; configurations have neither. Names are lowercased.
            "AWS::ImageBuilder::Component": lambda: a.arn(
                "imagebuilder", f"component/{name.lower()}/{self._property(logical_id, 'Version')}/1"
            ),
            "AWS::ImageBuilder::ImageRecipe": lambda: a.arn(
                "imagebuilder", f"image-recipe/{name.lower()}/{self._property(logical_id, 'Version')}"
            ),
            "AWS::ImageBuilder::InfrastructureConfiguration": lambda: a.arn(
                "imagebuilder", f"infrastructure-configuration/{name.lower()}"
            ),
            "AWS::ImageBuilder::DistributionConfiguration": lambda: a.arn(
                "imagebuilder", f"distribution-configuration/{name.lower()}"
            ),
            "AWS::Logs::LogGroup": lambda: a.arn("logs", f"log-group:{name}:*"),
            "AWS::KMS::Key": lambda: a.arn("kms", f"key/{self.ref(logical_id)}"),
            "AWS::CloudWatch::Alarm": lambda: a.arn("cloudwatch", f"alarm:{name}"),
            "AWS::Events::Rule": lambda: a.arn("events", f"rule/{name}"),
            "AWS::SecretsManager::Secret": lambda: a.arn("secretsmanager", f"secret:{name}-AbCdEf"),
            "AWS::SSM::Parameter": lambda: a.arn("ssm", f"parameter{name if name.startswith('/') else '/' + name}"),
            "AWS::SQS::Queue": lambda: a.arn("sqs", name),
        }
        # AWS::SQS::Queue: Ref is the queue URL; Fn::GetAtt Arn, QueueName, QueueUrl
        # (https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-sqs-queue.html).
        if attribute == "QueueUrl" and type_name == "AWS::SQS::Queue":
            return f"https://sqs.{a.region}.amazonaws.com/{a.account}/{name}"
        if attribute in {"Arn", "TopicArn"} and type_name in arns:
            return arns[type_name]()
        if attribute in {"Name", "TopicName", "QueueName"}:
            return name
        raise ArtifactError(f"Fn::GetAtt {logical_id}.{attribute} ({type_name}) is not emulated")

    def resolve(self, value: Any, where: str = "") -> Any:
        if isinstance(value, str | int | float | bool) or value is None:
            return value
        if isinstance(value, list):
            return [self.resolve(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if not isinstance(value, dict):
            raise ArtifactError(f"{where}: cannot read {value!r}")
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self._pseudo(arg) if str(arg).startswith("AWS::") else self.ref(arg)
            if key == "Fn::GetAtt":
                logical_id, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.get_att(logical_id, attribute)
            if key == "Fn::Join":
                separator, parts = arg
                return separator.join(str(p) for p in self.resolve(parts, where))
            if key == "Fn::Select":
                index, items = arg
                return self.resolve(items, where)[int(index)]
            if key == "Fn::Sub":
                return self._sub(arg, where)
            if key.startswith("Fn::") or key == "Condition":
                raise ArtifactError(f"{where}: {key} is not emulated")
        return {k: self.resolve(v, f"{where}.{k}") for k, v in value.items()}

    def _sub(self, arg: Any, where: str) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1], where))

        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return str(variables[name])
            if name.startswith("AWS::"):
                return self._pseudo(name)
            logical_id, _, attribute = name.partition(".")
            return self.get_att(logical_id, attribute) if attribute else self.ref(logical_id)

        return re.sub(r"\$\{([^}!]+)\}", one, text)

    def _pseudo(self, name: str) -> str:
        a = self.account
        values = {
            "AWS::Partition": a.partition,
            "AWS::Region": a.region,
            "AWS::AccountId": a.account,
            "AWS::URLSuffix": "amazonaws.com.cn" if a.partition == "aws-cn" else "amazonaws.com",
            "AWS::StackName": self.artifact.stack_name,
        }
        if name not in values:
            raise ArtifactError(f"pseudo parameter {name} is not emulated")
        return values[name]

    def _resource(self, logical_id: str) -> dict[str, Any]:
        resource = self.artifact.resources.get(logical_id)
        if resource is None:
            raise ArtifactError(f"{logical_id} is not a resource of {self.artifact.stack_name}")
        return resource
