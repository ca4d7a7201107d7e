"""The approvers' managed policy: what `scripts/approval.py` needs to answer a stage's approval, and nothing more.

An approval's task token lives in the lock table's wait item `wait#approval#<execution ARN>#<stage>` (written by
register_wait); it is in no mail and no log. Attach this policy (stack output `ApproverPolicyArn`) to the people
or the role who may approve: it reads and deletes those items only, of this state machine's executions only,
answers the task (SendTaskSuccess/SendTaskFailure), describes this state machine's executions, and reads the
stack's outputs (the table's name).
"""

from __future__ import annotations

from aws_cdk import ArnFormat, CfnOutput, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from constructs import Construct

from shared.aws.task_tokens import APPROVAL_PREFIX
from shared.lock_items import STATUS_ATTRIBUTES
from stacks.nag import ACCOUNT, PARTITION, REGION, acknowledge, wildcard_resource

# The stack outputs scripts/approval.py reads.
POLICY_OUTPUT = "ApproverPolicyArn"
TABLE_OUTPUT = "LockTableName"
# scripts/status.py's read-only policy: a Scan of shared.lock_items.STATUS_ATTRIBUTES only.
STATUS_POLICY_OUTPUT = "StatusReaderPolicyArn"


class Approvals(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, table: dynamodb.ITable, state_machine_name: str) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        # This state machine's executions: arn:<partition>:states:<region>:<account>:execution:<machine>:<name>
        # (Service Authorization Reference, AWS Step Functions, resource type "execution":
        # https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsstepfunctions.html).
        executions = stack.format_arn(
            service="states",
            resource="execution",
            resource_name=f"{state_machine_name}:*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        self.policy = iam.ManagedPolicy(
            self,
            "ApproverPolicy",
            description=f"Approve or reject the approval stages of {state_machine_name} (scripts/approval.py)",
            statements=[
                iam.PolicyStatement(
                    sid="ApprovalItemsOnly",
                    actions=["dynamodb:GetItem", "dynamodb:DeleteItem"],
                    resources=[table.table_arn],
                    # dynamodb:LeadingKeys is the item's partition key value (DynamoDB Developer Guide, "Using IAM
                    # policy conditions for fine-grained access control":
                    # https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/specifying-conditions.html),
                    # a multivalued key, hence ForAllValues. ForAllValues "also returns true if there are no context
                    # keys in the request" (IAM User Guide, "Multivalued context keys examples":
                    # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition_examples-multi-valued-context-keys.html),
                    # so Null false requires the key. Lock items never start with "wait#" (task_tokens.py).
                    conditions={
                        "ForAllValues:StringLike": {"dynamodb:LeadingKeys": [f"{APPROVAL_PREFIX}{executions}"]},
                        "Null": {"dynamodb:LeadingKeys": "false"},
                    },
                ),
                iam.PolicyStatement(
                    sid="AnswerApprovals",
                    actions=["states:SendTaskSuccess", "states:SendTaskFailure"],
                    # The Service Authorization Reference lists no resource types for SendTaskSuccess and
                    # SendTaskFailure (same page): only "*" applies. The token itself is what limits the answer
                    # to one task, and only this policy's holders can read approval tokens.
                    resources=["*"],
                ),
                iam.PolicyStatement(
                    sid="DescribeThisStateMachinesExecutions",
                    actions=["states:DescribeExecution"],
                    resources=[executions],
                ),
                iam.PolicyStatement(
                    sid="ReadTheStacksOutputs",
                    # DescribeStacks takes the stack resource type (Service Authorization Reference, AWS
                    # CloudFormation: https://docs.aws.amazon.com/service-authorization/latest/reference/list_awscloudformation.html).
                    actions=["cloudformation:DescribeStacks"],
                    resources=[stack.stack_id],
                ),
            ],
        )
        # The table is encrypted with the AWS managed key: its key policy lets every principal of the account who
        # may use DynamoDB use it through DynamoDB, so no kms: grant is needed (DynamoDB Developer Guide, "DynamoDB
        # encryption at rest": https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/EncryptionAtRest.html).
        acknowledge(
            self.policy,
            "SendTaskSuccess/SendTaskFailure have no resource types; only approvers can read an approval's token",
            wildcard_resource("*"),
        )
        acknowledge(
            self.policy,
            "DescribeExecution on this state machine's executions, whose names are not known before they start",
            wildcard_resource(f"arn:{PARTITION}:states:{REGION}:{ACCOUNT}:execution:{state_machine_name}:*"),
        )
        self.status_policy = status_reader_policy(self, table, state_machine_name, executions)
        CfnOutput(stack, POLICY_OUTPUT, value=self.policy.managed_policy_arn)
        CfnOutput(stack, STATUS_POLICY_OUTPUT, value=self.status_policy.managed_policy_arn)
        CfnOutput(stack, TABLE_OUTPUT, value=table.table_name)


def status_reader_policy(
    scope: Construct, table: dynamodb.ITable, state_machine_name: str, executions: str
) -> iam.ManagedPolicy:
    """What `make status` and `make history` read, and nothing they could change or a task token they could use."""
    stack = Stack.of(scope)
    machine = stack.format_arn(
        service="states",
        resource="stateMachine",
        resource_name=state_machine_name,
        arn_format=ArnFormat.COLON_RESOURCE_NAME,
    )
    policy = iam.ManagedPolicy(
        scope,
        "StatusReaderPolicy",
        description=f"Read what {state_machine_name} deployed where, its runs and its lock table (scripts/status.py)",
        statements=[
            iam.PolicyStatement(
                sid="LockTableWithoutTaskTokens",
                actions=["dynamodb:Scan"],
                resources=[table.table_arn],
                # dynamodb:Attributes lists the attributes a request names (its ProjectionExpression) and
                # dynamodb:Select its Select (DynamoDB Developer Guide, "Using IAM policy conditions for
                # fine-grained access control": https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/specifying-conditions.html;
                # IAM User Guide example: https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_examples_dynamodb_attributes.html).
                # Select is required to be SPECIFIC_ATTRIBUTES (not IfExists) and the attributes to be present, so
                # a Scan without a projection, which would return taskToken, is denied.
                conditions={
                    "ForAllValues:StringEquals": {"dynamodb:Attributes": list(STATUS_ATTRIBUTES)},
                    "StringEquals": {"dynamodb:Select": "SPECIFIC_ATTRIBUTES"},
                    "Null": {"dynamodb:Attributes": "false"},
                },
            ),
            iam.PolicyStatement(
                sid="ListThisStateMachinesExecutions", actions=["states:ListExecutions"], resources=[machine]
            ),
            iam.PolicyStatement(
                sid="ReadThisStateMachinesExecutions",
                actions=["states:DescribeExecution", "states:GetExecutionHistory"],
                resources=[executions],
            ),
            iam.PolicyStatement(
                sid="ReadGroupsTemplatesAndImages",
                # The Service Authorization Reference lists no resource types for these Describe actions (EC2 Auto
                # Scaling: https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonec2autoscaling.html;
                # EC2: https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonec2.html).
                actions=[
                    "autoscaling:DescribeAutoScalingGroups",
                    "autoscaling:DescribeInstanceRefreshes",
                    "ec2:DescribeLaunchTemplateVersions",
                    "ec2:DescribeImages",
                ],
                resources=["*"],
            ),
            iam.PolicyStatement(
                sid="ReadTheStacksOutputs", actions=["cloudformation:DescribeStacks"], resources=[stack.stack_id]
            ),
        ],
    )
    acknowledge(
        policy,
        "Auto Scaling and EC2 Describe actions have no resource types; they read, never change",
        wildcard_resource("*"),
    )
    acknowledge(
        policy,
        "DescribeExecution/GetExecutionHistory on this state machine's executions, named only when they start",
        wildcard_resource(f"arn:{PARTITION}:states:{REGION}:{ACCOUNT}:execution:{state_machine_name}:*"),
    )
    return policy
