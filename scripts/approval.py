#!/usr/bin/env python3
"""Approve or reject a stage waiting for approval, under your own IAM identity.

    python -m scripts.approval approve EXECUTION_ARN_OR_NAME [--stage prod] [--reason "looks good"]
    python -m scripts.approval reject  EXECUTION_ARN_OR_NAME [--stage prod] [--reason "error rate up in test"]

The approval's task token is in no mail and no log: it is in the lock table's wait item
`wait#approval#<execution ARN>#<stage>`, which only the approvers' managed policy (stack output
`ApproverPolicyArn`) may read. This command reads it (GetItem), answers (SendTaskSuccess, or SendTaskFailure
with error `Rejected`: the stage ends as ApprovalRejected), and deletes the item.

- The execution: its ARN (the ApprovalRequested mail's `executionId`), or its name with the state machine from
  --state-machine-arn, $STATE_MACHINE_ARN or the stack's StateMachineArn output.
- The region: the execution's (or state machine's) ARN's, else --region or your AWS configuration.
- The table: --table, $LOCK_TABLE_NAME, or the stack's LockTableName output.
- The stage: --stage, else the configuration's (cdk.json) approval stage that has a pending approval.

Exit codes: 0 answered; 1 the approval was already answered or expired (the answer changed nothing); 2 no
pending approval, or a usage, credentials, region or permission problem.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from botocore.exceptions import ClientError, NoCredentialsError, NoRegionError

from scripts.start_deployment import aws_failure, deploy_config, stack_name, stack_outputs
from shared.aws.stepfunctions import execution_arn
from shared.aws.task_tokens import (
    APPROVAL,
    ApprovalAnswer,
    NoPendingApprovalError,
    TaskTokens,
    WaitTable,
    answer_approval,
    approval_resource_id,
)

TABLE_OUTPUT = "LockTableName"  # stacks/approvals.py
POLICY_OUTPUT = "ApproverPolicyArn"
# botocore's stepfunctions model: DescribeExecution answers these for an ARN that names no execution.
_NO_EXECUTION = frozenset({"ExecutionDoesNotExist", "InvalidArn"})


class ApprovalError(Exception):
    """A problem the approver can fix, with the message that says how."""


def region_of(arn: str) -> str | None:
    parts = arn.split(":")
    return parts[3] if len(parts) > 3 and parts[0] == "arn" and parts[3] else None


def resolve_execution(execution: str, machine: Callable[[], str]) -> str:
    """An execution ARN as given, or the ARN of the named execution of the state machine."""
    if execution.startswith("arn:"):
        if ":execution:" not in execution:
            raise ApprovalError(f"not an execution ARN: {execution}")
        return execution
    try:
        return execution_arn(machine(), execution)
    except ValueError as exc:
        raise ApprovalError(str(exc)) from exc


def stack_output(cloudformation: Any, stack: str, key: str) -> str:
    outputs = stack_outputs(cloudformation, stack)
    if key in outputs:
        return outputs[key]
    raise ApprovalError(f"stack {stack} has no {key} output (deploy this version of the stack, or pass the value)")


def approval_stages() -> list[str]:
    """The configured stages that wait for approval (cdk.json), in order."""
    return [stage.name for stage in deploy_config().stages if stage.approval]


def pending_stage(waits: WaitTable, execution: str, stages: Sequence[str]) -> str:
    """The one stage of `stages` with a pending approval in `execution`."""
    pending = [s for s in stages if waits.get(APPROVAL, approval_resource_id(execution, s)) is not None]
    if len(pending) == 1:
        return pending[0]
    if not pending:
        looked = ", ".join(stages) or "none"
        raise NoPendingApprovalError(f"no pending approval in {execution} (stages looked at: {looked})")
    raise ApprovalError(f"several stages wait for approval in {execution}: {', '.join(pending)}; pass --stage")


def check_running(sfn: Any, execution: str) -> None:
    try:
        status = sfn.describe_execution(executionArn=execution)["status"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in _NO_EXECUTION:
            raise ApprovalError(f"no such execution: {execution}") from exc
        raise
    if status != "RUNNING":
        raise NoPendingApprovalError(f"{execution} is {status}: nothing waits for approval any more")


def describe(answer: ApprovalAnswer) -> tuple[int, str]:
    verb = "approved" if answer.decision == "approve" else "rejected"
    if answer.delivered:
        return 0, f"{verb}: stage {answer.stage} of {answer.execution_id}"
    return 1, (
        f"not {verb}: the approval of stage {answer.stage} of {answer.execution_id} was already answered or has "
        f"expired ({answer.code}: {answer.message}); its stale item was {'deleted' if answer.item_deleted else 'gone'}"
    )


def run(args: argparse.Namespace, session: Any) -> tuple[int, str]:
    """Everything but the argument parsing and the printing; `session` is a boto3 Session."""
    given_machine = args.state_machine_arn or os.environ.get("STATE_MACHINE_ARN")
    region = (
        (region_of(args.execution) if args.execution.startswith("arn:") else None)
        or (region_of(given_machine) if given_machine else None)
        or args.region
        or session.region_name
    )
    if not region:
        raise NoRegionError()

    cloudformation = session.client("cloudformation", region_name=region)
    stack = stack_name(args, deploy_config())

    def machine() -> str:  # as scripts/start_deployment.py finds it, in the approval's region
        return str(given_machine or stack_output(cloudformation, stack, "StateMachineArn"))

    execution = resolve_execution(args.execution, machine)
    table = args.table or os.environ.get("LOCK_TABLE_NAME") or stack_output(cloudformation, stack, TABLE_OUTPUT)
    sfn = session.client("stepfunctions", region_name=region)
    waits = WaitTable(table, session.client("dynamodb", region_name=region))
    check_running(sfn, execution)
    stage = args.stage or pending_stage(waits, execution, approval_stages())
    answer = answer_approval(waits, TaskTokens(sfn), execution, stage, args.decision, args.reason)
    return describe(answer)


def main(argv: list[str] | None = None, session: Any = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("decision", choices=["approve", "reject"])
    parser.add_argument("execution", help="the execution's ARN (executionId in the mail) or its name")
    parser.add_argument("--stage", help="the stage waiting (default: the one configured approval stage pending)")
    parser.add_argument("--reason", help="why: the rejection's cause, or a note with the approval")
    parser.add_argument("--state-machine-arn")
    parser.add_argument("--stack", help="the pipeline's stack (default: <application>-ami-pipeline from cdk.json)")
    parser.add_argument("--table", help="the lock table's name (default: $LOCK_TABLE_NAME or the stack's output)")
    parser.add_argument("--region")
    args = parser.parse_args(argv)
    if session is None:
        import boto3

        session = boto3.session.Session()
    try:
        code, text = run(args, session)
    except NoPendingApprovalError as exc:
        print(f"no pending approval: {exc}", file=sys.stderr)
        return 2
    except ApprovalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (NoCredentialsError, NoRegionError, ClientError) as exc:
        message = aws_failure(
            exc,
            no_region="pass the execution's ARN, --region, or set AWS_REGION",
            denied_hint=f" (attach the stack's {POLICY_OUTPUT} policy)",
        )
        print(f"error: {message}", file=sys.stderr)
        return 2
    print(text, file=sys.stdout if code == 0 else sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
