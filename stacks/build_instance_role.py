"""The build instances' role: what Image Builder's build and test instances may do, and no SSM parameter read."""

from __future__ import annotations

from aws_cdk import Aws, Stack
from aws_cdk import aws_iam as iam
from constructs import Construct

from stacks.checkov import skip
from stacks.config import PipelineConfig
from stacks.nag import PARTITION, acknowledge, managed_policy, wildcard_resource


# What the SSM agent on a build instance needs to run Image Builder's components: AmazonSSMManagedInstanceCore
# (AWS Managed Policy Reference, https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AmazonSSMManagedInstanceCore.html)
# without its ssm:GetParameter and ssm:GetParameters on "*". The build runs the application repository's own
# install.sh and test.sh as root, so any commit pushed to the branch could read every parameter of the account
# with them. No component here reads a parameter: app-install, app-test, base-hardening and ansible-playbook
# name none, and aws:update-linux updates the OS packages (the UpdateOS action module; the managed component's
# document is not published, so a parameter it needed would fail the build, visibly, rather than leak).
def ssm_agent_statements() -> tuple[iam.PolicyStatement, ...]:
    """An instance role's SSM agent statements, without any parameter read (new objects for each role)."""
    return (
        # The agent registers and reports the instance, and runs the State Manager associations, inventory, patch
        # and Distributor calls the managed policy grants; each acts on the calling managed instance.
        iam.PolicyStatement(
            sid="SsmAgentWithoutParameterReads",
            actions=[
                "ssm:DescribeAssociation",
                "ssm:GetDeployablePatchSnapshotForInstance",
                "ssm:GetDocument",
                "ssm:DescribeDocument",
                "ssm:GetManifest",
                "ssm:ListAssociations",
                "ssm:ListInstanceAssociations",
                "ssm:PutInventory",
                "ssm:PutComplianceItems",
                "ssm:PutConfigurePackageResult",
                "ssm:UpdateAssociationStatus",
                "ssm:UpdateInstanceAssociationStatus",
                "ssm:UpdateInstanceInformation",
            ],
            resources=["*"],
        ),
        # The agent's control and data channels (Session Manager, and Run Command on current agents).
        iam.PolicyStatement(
            sid="SsmAgentChannels",
            actions=[
                "ssmmessages:CreateControlChannel",
                "ssmmessages:CreateDataChannel",
                "ssmmessages:OpenControlChannel",
                "ssmmessages:OpenDataChannel",
            ],
            resources=["*"],
        ),
        # Run Command's message delivery: how Image Builder's build and test commands reach the instance.
        iam.PolicyStatement(
            sid="SsmAgentRunCommand",
            actions=[
                "ec2messages:AcknowledgeMessage",
                "ec2messages:DeleteMessage",
                "ec2messages:FailMessage",
                "ec2messages:GetEndpoint",
                "ec2messages:GetMessages",
                "ec2messages:SendReply",
            ],
            resources=["*"],
        ),
    )


def build_instance_role(scope: Construct, *, config: PipelineConfig) -> iam.Role:
    """The role of the Image Builder build and test instances: the managed instance profile policy, the SSM
    agent without parameter reads, and only what the configured source, playbook and logs bucket need."""
    role = iam.Role(
        scope,
        "BuildInstanceRole",
        assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
        description=f"Image Builder build and test instances of {config.application}",
        # EC2InstanceProfileForImageBuilder: CloudWatch Logs under /aws/imagebuilder/, GetComponent, KMS decrypt
        # of components, S3 objects in ec2imagebuilder-* buckets, EC2 snapshots and tags of Image Builder's
        # resources; no SSM parameter read. It "does not include permissions required to use the Systems
        # Manager Agent" ("Use AWS managed policies for EC2 Image Builder",
        # https://docs.aws.amazon.com/imagebuilder/latest/userguide/security-iam-awsmanpol.html#sec-iam-manpol-EC2InstanceProfileForImageBuilder),
        # which runs the components: those are the inline ssm_agent_statements.
        managed_policies=[iam.ManagedPolicy.from_aws_managed_policy_name("EC2InstanceProfileForImageBuilder")],
    )
    for statement in ssm_agent_statements():
        role.add_to_policy(statement)
    source = config.source
    if source and source.type == "codecommit":
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["codecommit:GitPull"],
                resources=[Stack.of(scope).format_arn(service="codecommit", resource=source.repository)],
            )
        )
    token_secret = source.token_secret_arn if source else None
    if token_secret:
        # A private GitHub repository: app-install reads the token at build time; only this one secret.
        role.add_to_policy(iam.PolicyStatement(actions=["secretsmanager:GetSecretValue"], resources=[token_secret]))
    playbook = config.base_image.ansible_playbook
    if playbook:
        bucket_and_key = playbook.removeprefix("s3://")
        role.add_to_policy(
            iam.PolicyStatement(actions=["s3:GetObject"], resources=[f"arn:{Aws.PARTITION}:s3:::{bucket_and_key}"])
        )
    if config.build.logs_bucket:
        prefix = f"{config.build.logs_bucket}/image-builder/{config.application}/*"
        role.add_to_policy(
            iam.PolicyStatement(actions=["s3:PutObject"], resources=[f"arn:{Aws.PARTITION}:s3:::{prefix}"])
        )
        acknowledge(
            role,
            "Build logs are written under this application's own prefix of the logs bucket",
            wildcard_resource(f"arn:{PARTITION}:s3:::{prefix}"),
        )
    acknowledge(
        role,
        "Build instances need Image Builder's instance permissions, which AWS maintains (no SSM parameter read)",
        managed_policy("EC2InstanceProfileForImageBuilder"),
    )
    acknowledge(
        role,
        "The SSM agent's registration, Run Command and session actions act on the calling instance itself",
        wildcard_resource("*"),
    )
    policy = role.node.find_child("DefaultPolicy")
    skip(
        policy,
        "The SSM agent's own calls (UpdateInstanceInformation, ssmmessages, ec2messages) have no resource types",
        "CKV_AWS_111",
    )
    return role
