"""IAM requests of the Auto Scaling, ELB, CloudWatch, DynamoDB, SSM, Image Builder, Step Functions, Secrets
Manager, SNS and Lambda calls."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from rehearsal.iam import AuthorizationRequest
from rehearsal.iam.ec2 import _launch_checks, _template_specs
from rehearsal.iam.facts import (
    NEW_GROUP_ID,
    TAGS_IN_REQUEST,
    Context,
    Mapper,
    UnmappedCallError,
    UnresolvedCallError,
    _Call,
    _parameter_arn,
    _request_tags,
    _resource_tags,
    _split,
    _tag_list,
)

# --- Amazon EC2 Auto Scaling -----------------------------------------------------------------------------
# SAR: "Actions, resources, and condition keys for Amazon EC2 Auto Scaling",
# https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonec2autoscaling.html
# Describe* rows have no resource type. Group ARN: autoScalingGroup:${GroupId}:autoScalingGroupName/${Name}.
# Not modelled: autoscaling:ImageId (described for launch configurations), CapacityReservation*,
# TrafficSourceIdentifiers, Metadata*, SpotPrice. Tags for security
# (https://docs.aws.amazon.com/autoscaling/ec2/userguide/tag-security.html) names ResourceTag, RequestTag, TagKeys.
GROUP_KEYS = frozenset({"aws:ResourceTag/*", "autoscaling:ResourceTag/*"})


def _group_request(
    c: _Call, action: str, name: str, context: Context | None = None, keys: Iterable[str] = (), *, new: bool = False
) -> AuthorizationRequest:
    facts = None if new else c.lookup.group(name)  # a group CreateAutoScalingGroup makes has no tags yet
    arn = c.arn(
        "autoscaling", f"autoScalingGroup:{facts.group_id if facts else NEW_GROUP_ID}:autoScalingGroupName/{name}"
    )
    tags = _resource_tags(facts.tags, "aws", "autoscaling") if facts else {}
    return c.request(action, arn, tags | (context or {}), GROUP_KEYS | set(keys))


def _on_group(action: str) -> Mapper:
    def mapper(c: _Call) -> list[AuthorizationRequest]:
        ctx: Context = {}
        if "TargetGroupARNs" in c.params:  # Attach/DetachLoadBalancerTargetGroups
            ctx["autoscaling:TargetGroupARNs"] = tuple(c.params["TargetGroupARNs"])
        if "ForceDelete" in c.params:  # DeleteAutoScalingGroup; absent when the caller does not pass it
            ctx["autoscaling:ForceDelete"] = ("true" if c.params["ForceDelete"] else "false",)
        keys = {"autoscaling:TargetGroupARNs"} if "TargetGroupARNs" in c.params else set()
        keys |= {"autoscaling:ForceDelete"} if action == "autoscaling:DeleteAutoScalingGroup" else set()
        return [_group_request(c, action, str(c.params["AutoScalingGroupName"]), ctx, keys)]

    return mapper


def _group_settings(params: Mapping[str, Any]) -> tuple[Context, set[str]]:
    """The request keys of CreateAutoScalingGroup / UpdateAutoScalingGroup, each present iff the request sets it.
    LaunchTemplateVersionSpecified is "true" when every template named has a version number (not $Latest,
    $Default or none), and is left unmodelled when the request names no template (docs silent)."""
    ctx: Context = {
        f"autoscaling:{p}": (str(params[p]),) for p in ("MinSize", "MaxSize", "LaunchConfigurationName") if p in params
    }
    if params.get("VPCZoneIdentifier"):
        ctx["autoscaling:VPCZoneIdentifiers"] = _split(params["VPCZoneIdentifier"])
    overrides = ((params.get("MixedInstancesPolicy") or {}).get("LaunchTemplate") or {}).get("Overrides", [])
    if types := tuple(o["InstanceType"] for o in overrides if o.get("InstanceType")):
        ctx["autoscaling:InstanceTypes"] = types
    keys = {f"autoscaling:{k}" for k in ("MinSize", "MaxSize", "LaunchConfigurationName", "InstanceTypes")}
    keys.add("autoscaling:VPCZoneIdentifiers")
    if specs := _template_specs(params):
        numbered = all(str(s.get("Version") or "").isdigit() for s in specs)
        ctx["autoscaling:LaunchTemplateVersionSpecified"] = ("true" if numbered else "false",)
        keys.add("autoscaling:LaunchTemplateVersionSpecified")
    return ctx, keys


def _create_group(c: _Call) -> list[AuthorizationRequest]:
    ctx, keys = _group_settings(c.params)
    for param in ("TargetGroupARNs", "LoadBalancerNames"):
        if c.params.get(param):
            ctx[f"autoscaling:{param}"] = tuple(c.params[param])
        keys.add(f"autoscaling:{param}")
    ctx |= _request_tags(_tag_list(c.params.get("Tags", [])))
    name = str(c.params["AutoScalingGroupName"])
    action = _group_request(c, "autoscaling:CreateAutoScalingGroup", name, ctx, keys | TAGS_IN_REQUEST, new=True)
    # Not emitted: iam:CreateServiceLinkedRole (only when AWSServiceRoleForAutoScaling does not exist yet).
    return [action, *_launch_checks(c, c.params, None)]


def _update_group(c: _Call) -> list[AuthorizationRequest]:
    ctx, keys = _group_settings(c.params)
    name = str(c.params["AutoScalingGroupName"])
    return [
        _group_request(c, "autoscaling:UpdateAutoScalingGroup", name, ctx, keys),
        *_launch_checks(c, c.params, c.lookup.group(name)),
    ]


def _start_refresh(c: _Call) -> list[AuthorizationRequest]:
    # The launch template pages speak of creating and updating groups only. A refresh with a DesiredConfiguration
    # moves the group to that template, and StartInstanceRefresh is publicly reported to fail with "You are not
    # authorized to use launch template": the same checks are applied (docs silent; the safer reading).
    name = str(c.params["AutoScalingGroupName"])
    desired = c.params.get("DesiredConfiguration") or {}
    return [
        _group_request(c, "autoscaling:StartInstanceRefresh", name),
        *_launch_checks(c, desired, c.lookup.group(name)),
    ]


def _tag_groups(c: _Call) -> list[AuthorizationRequest]:
    by_group: dict[str, dict[str, str]] = {}
    for tag in c.params.get("Tags", []):
        by_group.setdefault(str(tag["ResourceId"]), {})[str(tag["Key"])] = str(tag.get("Value", ""))
    return [
        _group_request(c, "autoscaling:CreateOrUpdateTags", group, _request_tags(tags), TAGS_IN_REQUEST)
        for group, tags in by_group.items()
    ]


# --- Elastic Load Balancing V2, CloudWatch ------------------------------------------------------------------
# SAR: "Actions, resources, and condition keys for AWS Elastic Load Balancing V2",
# https://docs.aws.amazon.com/service-authorization/latest/reference/list_awselasticloadbalancingv2.html
# (DescribeTargetHealth: no resource type). SAR: "Actions, resources, and condition keys for Amazon CloudWatch",
# https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazoncloudwatch.html
# (DescribeAlarms: alarm*, arn:${Partition}:cloudwatch:${Region}:${Account}:alarm:${AlarmName}; alarm tags not
# modelled). Without AlarmNames the call lists every alarm: the request is on "*" (docs silent).
def _describe_alarms(c: _Call) -> list[AuthorizationRequest]:
    names = c.params.get("AlarmNames") or []
    return [c.request("cloudwatch:DescribeAlarms", c.arn("cloudwatch", f"alarm:{n}")) for n in names] or [
        c.request("cloudwatch:DescribeAlarms")
    ]


# --- Amazon DynamoDB ---------------------------------------------------------------------------------------
# SAR: "Actions, resources, and condition keys for Amazon DynamoDB",
# https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazondynamodb.html
# table* (arn:${Partition}:dynamodb:${Region}:${Account}:table/${TableName}); Query/Scan with IndexName are on
# the index (table/${TableName}/index/${IndexName}). Not modelled: dynamodb:Attributes, LeadingKeys, Select,
# ReturnValues, ReturnConsumedCapacity, EnclosingOperation, table tags.
def _table_arn(c: _Call, name: str, index: str | None = None) -> str:
    arn = name if name.startswith("arn:") else c.arn("dynamodb", f"table/{name}")
    return f"{arn}/index/{index}" if index else arn


def _on_table(action: str) -> Mapper:
    return lambda c: [c.request(action, _table_arn(c, str(c.params["TableName"]), c.params.get("IndexName")))]


def _batch_write(c: _Call) -> list[AuthorizationRequest]:
    return [c.request("dynamodb:BatchWriteItem", _table_arn(c, table)) for table in c.params.get("RequestItems", {})]


# --- AWS Systems Manager -----------------------------------------------------------------------------------
# SAR: "Actions, resources, and condition keys for AWS Systems Manager",
# https://docs.aws.amazon.com/service-authorization/latest/reference/list_awssystemsmanager.html
# parameter* = arn:${Partition}:ssm:${Region}:${Account}:parameter/${ParameterNameWithoutLeadingSlash};
# DescribeParameters has no resource type. Not modelled: parameter tags (aws:ResourceTag on GetParameter(s)).
def _put_parameter(c: _Call) -> list[AuthorizationRequest]:
    ctx = _request_tags(_tag_list(c.params.get("Tags", [])))
    if "Overwrite" in c.params:
        ctx["ssm:Overwrite"] = ("true" if c.params["Overwrite"] else "false",)
    if c.params.get("Policies"):
        ctx["ssm:Policies"] = (str(c.params["Policies"]),)
    keys = TAGS_IN_REQUEST | {"ssm:Overwrite", "ssm:Policies"}
    return [c.request("ssm:PutParameter", _parameter_arn(c, str(c.params["Name"])), ctx, keys)]


def _on_parameters(action: str) -> Mapper:  # GetParameter (Name) and GetParameters (Names): one per parameter
    return lambda c: [c.request(action, _parameter_arn(c, str(n))) for n in c.params.get("Names") or [c.params["Name"]]]


# --- EC2 Image Builder -------------------------------------------------------------------------------------
# SAR: "Actions, resources, and condition keys for Amazon EC2 Image Builder",
# https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonec2imagebuilder.html
# StartImagePipelineExecution: imagePipeline*, aws:RequestTag/aws:TagKeys, dependent actions
# iam:CreateServiceLinkedRole, imagebuilder:GetImagePipeline, imagebuilder:TagResource. GetImage and
# ListImagePackages: image* (the build version ARN). Image pipeline and image tags are not modelled.
def _start_pipeline(c: _Call) -> list[AuthorizationRequest]:
    arn, tags = str(c.params["imagePipelineArn"]), dict(c.params.get("tags") or {})
    if tags:  # TagResource would be on the image the execution creates, whose ARN is not known beforehand
        raise UnresolvedCallError("imagebuilder.StartImagePipelineExecution with tags: the tagged image is unknown")
    # The SAR lists GetImagePipeline as a dependent action and the docs do not say when it is checked: always
    # (the safer reading). CreateServiceLinkedRole only applies while the service-linked role is missing.
    why = "SAR lists imagebuilder:GetImagePipeline as a dependent action of StartImagePipelineExecution"
    return [
        c.request("imagebuilder:StartImagePipelineExecution", arn, {}, TAGS_IN_REQUEST),
        c.request("imagebuilder:GetImagePipeline", arn, why=why),
    ]


# The operations table of the same page (its China-region copy lists API operations with every IAM action they
# authorize): CreateImageRecipe → imagebuilder:CreateImageRecipe on imageRecipe*, imagebuilder:GetComponent,
# imagebuilder:GetImage (the parent, when it is an Image Builder image) and imagebuilder:TagResource; CreateImage
# → imagebuilder:CreateImage on image*, GetImageRecipe, GetInfrastructureConfiguration,
# GetDistributionConfiguration, TagResource (GetContainerRecipe and GetWorkflow for what this project never uses;
# iam:PassRole only for an executionRole, which it never passes); CancelImageCreation: image*.
# Resource ARNs: image-recipe/<name>/<version>; image/<name>/<version>/<build> (the resource types table).
def _tagged(c: _Call, action: str, arn: str, why: str) -> list[AuthorizationRequest]:
    tags = {str(k): str(v) for k, v in dict(c.params.get("tags") or {}).items()}
    if not tags:
        return []
    ctx: Context = {f"aws:RequestTag/{k}": (v,) for k, v in tags.items()} | {"aws:TagKeys": tuple(tags)}
    return [c.request("imagebuilder:TagResource", arn, ctx, TAGS_IN_REQUEST, why=why)]


def _create_recipe(c: _Call) -> list[AuthorizationRequest]:
    name, version = str(c.params["name"]).lower(), str(c.params["semanticVersion"])
    arn = c.arn("imagebuilder", f"image-recipe/{name}/{version}")
    out = [c.request("imagebuilder:CreateImageRecipe", arn, {}, TAGS_IN_REQUEST)]
    why = "the SAR operations table lists imagebuilder:GetComponent for CreateImageRecipe"
    out += [
        c.request("imagebuilder:GetComponent", str(component["componentArn"]), why=why)
        for component in c.params.get("components", [])
    ]
    parent = str(c.params["parentImage"])
    if parent.startswith("arn:"):
        out.append(c.request("imagebuilder:GetImage", parent, why="the recipe's parent is an Image Builder image"))
    return out + _tagged(c, "CreateImageRecipe", arn, "CreateImageRecipe with tags")


def _create_image(c: _Call) -> list[AuthorizationRequest]:
    recipe = str(c.params["imageRecipeArn"])
    name_version = recipe.split(":image-recipe/", 1)[1]
    # The image's build number is Image Builder's to assign (the first build of a recipe version is 1).
    arn = c.arn("imagebuilder", f"image/{name_version}/1")
    why = "the SAR operations table lists it for CreateImage"
    out = [
        c.request("imagebuilder:CreateImage", arn, {}, TAGS_IN_REQUEST),
        c.request("imagebuilder:GetImageRecipe", recipe, why=why),
        c.request(
            "imagebuilder:GetInfrastructureConfiguration", str(c.params["infrastructureConfigurationArn"]), why=why
        ),
    ]
    if c.params.get("distributionConfigurationArn"):
        out.append(
            c.request(
                "imagebuilder:GetDistributionConfiguration", str(c.params["distributionConfigurationArn"]), why=why
            )
        )
    return out + _tagged(c, "CreateImage", arn, "CreateImage with tags")


def _on_build(action: str) -> Mapper:
    return lambda c: [c.request(action, str(c.params["imageBuildVersionArn"]))]


# --- AWS Step Functions ------------------------------------------------------------------------------------
# SAR: "Actions, resources, and condition keys for AWS Step Functions",
# https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsstepfunctions.html
# SendTaskSuccess/SendTaskFailure/SendTaskHeartbeat: no resource type ("*"). StartExecution: statemachine*,
# states:StateMachineQualifier (the version or alias a qualified ARN names). DescribeExecution and
# GetExecutionHistory: execution* or express*, the ARN as called. State machine and execution tags are not
# modelled. (Public reports show AWS naming
# the state machine in SendTaskFailure denials; the request carries only an opaque token, and "*" is what the
# SAR says: a policy scoped to the state machine ARN is denied here, one on "*" passes either way.)
def _start_execution(c: _Call) -> list[AuthorizationRequest]:
    arn = str(c.params["stateMachineArn"])
    parts = arn.split(":")  # arn:aws:states:region:account:stateMachine:name[:qualifier]
    ctx: Context = {"states:StateMachineQualifier": (parts[7],)} if len(parts) > 7 else {}
    return [c.request("states:StartExecution", arn, ctx, {"states:StateMachineQualifier"})]


# --- AWS Secrets Manager -----------------------------------------------------------------------------------
# SAR: "Actions, resources, and condition keys for AWS Secrets Manager",
# https://docs.aws.amazon.com/service-authorization/latest/reference/list_awssecretsmanager.html
# Secret* = arn:${Partition}:secretsmanager:${Region}:${Account}:secret:${SecretId}, where the ARN "includes the
# name of the secret followed by six random characters" (CreateSecret, ARN). A SecretId naming a secret of the
# account is authorized on that secret's ARN; an unknown name on "secret:NAME-??????" (the suffix unknown).
# Not modelled: secretsmanager:SecretId, SecretPrimaryRegion, resource/AllowRotationLambdaArn, resource/Type.
def _get_secret(c: _Call) -> list[AuthorizationRequest]:
    secret_id = str(c.params["SecretId"])
    facts = c.lookup.secret(secret_id)
    fallback = secret_id if secret_id.startswith("arn:") else c.arn("secretsmanager", f"secret:{secret_id}-??????")
    ctx = _resource_tags(facts.tags, "aws", "secretsmanager") if facts else {}
    for param in ("VersionId", "VersionStage"):
        if c.params.get(param):
            ctx[f"secretsmanager:{param}"] = (str(c.params[param]),)
    keys = {
        "secretsmanager:VersionId",
        "secretsmanager:VersionStage",
        "aws:ResourceTag/*",
        "secretsmanager:ResourceTag/*",
    }
    return [c.request("secretsmanager:GetSecretValue", facts.arn if facts else fallback, ctx, keys)]


# --- Amazon SNS, AWS KMS -----------------------------------------------------------------------------------
# SAR: "Actions, resources, and condition keys for Amazon SNS",
# https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonsns.html (Publish: topic*).
# SNS Developer Guide, "Managing Amazon SNS encryption keys and costs", "Allow a user to send messages to a
# topic with SSE" (https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html): "The publisher must have
# the kms:GenerateDataKey and kms:Decrypt permissions" for the key. KMS SAR ("Actions, resources, and condition
# keys for AWS Key Management Service",
# https://docs.aws.amazon.com/service-authorization/latest/reference/list_awskeymanagementservice.html): key*;
# modelled kms:CallerAccount; not modelled kms:ViaService, kms:EncryptionContext*, key properties and tags.
def _publish(c: _Call) -> list[AuthorizationRequest]:
    topic = c.params.get("TopicArn")
    if not topic:
        raise UnmappedCallError(
            "sns.Publish to a TargetArn or PhoneNumber has no IAM mapping in rehearsal/iam/requests.py"
        )
    out = [c.request("sns:Publish", str(topic))]
    if key := c.lookup.topic_kms_key(str(topic)):
        why = f"SNS encrypts the message with the topic's KMS key as the publisher ({topic})"
        caller: Context = {"kms:CallerAccount": (c.where.account,)}
        out += [c.request(a, key, caller, {"kms:CallerAccount"}, why) for a in ("kms:GenerateDataKey", "kms:Decrypt")]
    return out


# --- AWS Lambda ---------------------------------------------------------------------------------------------
# SAR: "Actions, resources, and condition keys for AWS Lambda",
# https://docs.aws.amazon.com/service-authorization/latest/reference/list_awslambda.html: InvokeFunction
# (operation Invoke) on function*; lambda:EventSourceToken and lambda:InvokedViaFunctionUrl are absent for an
# SDK Invoke. Lambda Developer Guide, "Fine-tuning the Resources and Conditions sections of policies"
# (https://docs.aws.amazon.com/lambda/latest/dg/lambda-api-permissions-ref.html) and "Using Lambda aliases in
# event sources and permissions policies" (https://docs.aws.amazon.com/lambda/latest/dg/using-aliases.html):
# permissions apply to the ARN used; an unqualified ARN does not cover a qualified invoke. So the resource is
# the ARN as called: unqualified, or with the version, alias or $LATEST the caller named.
def _function_arn(c: _Call, name: str, qualifier: str | None) -> str:
    if name.startswith("arn:"):
        arn = name
    elif ":function:" in name:  # partial ARN: ACCOUNT:function:NAME[:QUALIFIER]
        arn = f"arn:{c.where.partition}:lambda:{c.where.region}:{name}"
    else:  # NAME[:QUALIFIER]
        arn = c.arn("lambda", f"function:{name}")
    return f"{arn}:{qualifier}" if qualifier and len(arn.split(":")) == 7 else arn


def _invoke(c: _Call) -> list[AuthorizationRequest]:
    arn = _function_arn(c, str(c.params["FunctionName"]), c.params.get("Qualifier"))
    return [c.request("lambda:InvokeFunction", arn, {}, {"lambda:EventSourceToken", "lambda:InvokedViaFunctionUrl"})]
