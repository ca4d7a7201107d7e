#!/usr/bin/env python3
"""Start a deployment by hand: build the execution input, check it, start the state machine.

    python -m scripts.start_deployment deploy --commit "$(git rev-parse HEAD)" [--stages test] [--dry-run]
    python -m scripts.start_deployment deploy-image --ami ami-0abc1234def567890
    python -m scripts.start_deployment rollback --to previous | --to ami-...
    python -m scripts.start_deployment rebuild-base
    ... --print    prints the JSON and the equivalent `aws stepfunctions start-execution` command only

Checks that need AWS (is the commit in the CodeCommit repository, is the AMI ours, is it still kept) happen in
the state machine's first state.
The state machine ARN comes from --state-machine-arn, $STATE_MACHINE_ARN, or the stack's
StateMachineArn output (CloudFormation, stack `<application>-ami-pipeline`, the application of cdk.json, or
--stack; in --region or your default region). The execution starts in the state machine's own region (from its
ARN). Without credentials or a region it says so, and it prints how to follow the run. The input is checked
with the state machine's own first-state checks (shape, combinations, source, stages) against the
configuration in cdk.json, so a typo fails here, not in AWS. A commit is the full 40-hex SHA: a short one can
name a tag or branch, and is refused (`git rev-parse <sha>` prints the full one).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from validate_request.logic import check_request, parse_request

from shared.config import DeployConfig
from shared.errors import InvalidInput

ROOT = Path(__file__).resolve().parent.parent


def deploy_config() -> DeployConfig:
    """The configuration `cdk deploy` used: cdk.json's immutableAmi context, validated as at synth."""
    from stacks import config as stacks_config  # the CDK side's loader (it imports aws_cdk): only here

    context = json.loads((ROOT / "cdk.json").read_text())["context"].get(stacks_config.CONTEXT_KEY)
    return DeployConfig.model_validate_json(stacks_config.load_config(context).deploy_config_json())


def build_request(args: argparse.Namespace) -> dict[str, Any]:
    request: dict[str, Any] = {"action": args.action}
    for key, value in (
        ("commit", args.commit),
        ("branch", args.branch),
        ("repository", args.repository),
        ("amiId", args.ami),
        ("to", args.to),
    ):
        if value:
            request[key] = value
    if args.stages:
        request["stages"] = [s for s in args.stages.split(",") if s]
    if args.dry_run:
        request["dryRun"] = True
    return request


NO_CREDENTIALS = "no AWS credentials: sign in (aws sso login, a profile, AWS_* variables) first"
ACCESS_DENIED_CODES = frozenset({"AccessDeniedException", "AccessDenied", "UnauthorizedOperation"})


def aws_failure(exc: Exception, *, no_region: str, denied_hint: str = "") -> str:
    """The one line a command prints for a failed AWS call: no credentials, no region, or the service's error."""
    from botocore.exceptions import ClientError, NoCredentialsError, NoRegionError

    if isinstance(exc, NoCredentialsError):
        return NO_CREDENTIALS
    if isinstance(exc, NoRegionError):
        return f"no region: {no_region}"
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        hint = denied_hint if error.get("Code") in ACCESS_DENIED_CODES else ""
        return f"{error.get('Code')}: {error.get('Message')}{hint}"
    return str(exc)


NO_REGION = "pass --region, --state-machine-arn, or set AWS_REGION"


class StartError(RuntimeError):
    """What stops a start before anything runs, said in one line."""


def stack_name(args: argparse.Namespace, config: DeployConfig) -> str:
    """--stack, else the stack app.py names for the configured application."""
    return str(args.stack or f"{config.application}-ami-pipeline")


def region_of(arn: str) -> str:
    """The region field of an ARN (arn:partition:service:region:account:resource)."""
    parts = arn.split(":")
    if len(parts) < 6 or parts[0] != "arn" or not parts[3]:
        raise StartError(f"{arn!r} is not a state machine ARN (arn:aws:states:<region>:<account>:stateMachine:<name>)")
    return parts[3]


def stack_outputs(cloudformation: Any, stack: str) -> dict[str, str]:
    """The stack's outputs by key (DescribeStacks; its errors propagate)."""
    found = cloudformation.describe_stacks(StackName=stack)["Stacks"][0]
    return {str(o["OutputKey"]): str(o["OutputValue"]) for o in found.get("Outputs", [])}


def state_machine_arn(args: argparse.Namespace, config: DeployConfig, session: Any) -> str:
    """--state-machine-arn, $STATE_MACHINE_ARN, or the stack's StateMachineArn output."""
    if args.state_machine_arn or os.environ.get("STATE_MACHINE_ARN"):
        return str(args.state_machine_arn or os.environ["STATE_MACHINE_ARN"])
    from botocore.exceptions import ClientError

    name = stack_name(args, config)
    region = args.region or session.region_name
    if not region:
        raise StartError(f"no region: {NO_REGION}")
    try:
        outputs = stack_outputs(session.client("cloudformation", region_name=region), name)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise StartError(
            f"stack {name} in {region}: {error.get('Code')}: {error.get('Message')} "
            "(deployed elsewhere? pass --region or --stack, or --state-machine-arn)"
        ) from None
    if "StateMachineArn" in outputs:
        return outputs["StateMachineArn"]
    raise StartError(f"stack {name} in {region} has no StateMachineArn output")


def follow_hint(execution_arn: str, region: str) -> str:
    """How to follow the run: the console page and the CLI call."""
    console = (
        f"https://{region}.console.aws.amazon.com/states/home?region={region}#/v2/executions/details/{execution_arn}"
    )
    return (
        f"follow it: {console}\n"
        f"       or: aws stepfunctions describe-execution --region {region} --execution-arn {execution_arn}"
    )


def start(args: argparse.Namespace, payload: str, config: DeployConfig, session: Any) -> str:
    """StartExecution in the state machine's own region; the lines to print."""
    arn = state_machine_arn(args, config, session)
    region = region_of(arn)
    execution = session.client("stepfunctions", region_name=region).start_execution(stateMachineArn=arn, input=payload)
    return f"{execution['executionArn']}\n{follow_hint(execution['executionArn'], region)}"


def main(argv: list[str] | None = None, session: Any = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["deploy", "deploy-image", "rollback", "rebuild-base"])
    parser.add_argument("--commit")
    parser.add_argument("--branch")
    parser.add_argument("--repository")
    parser.add_argument("--ami", help="deploy-image: the AMI to roll out")
    parser.add_argument("--to", help="rollback: previous, or a kept ami-...")
    parser.add_argument("--stages", help="comma-separated subset of the configured stages")
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--state-machine-arn")
    parser.add_argument("--stack", help="the pipeline's stack (default: <application>-ami-pipeline from cdk.json)")
    parser.add_argument("--region", help="where to look for the stack (default: your AWS configuration's)")
    parser.add_argument("--print", action="store_true", help="print the input and the aws CLI command; start nothing")
    args = parser.parse_args(argv)

    request = build_request(args)
    config = deploy_config()
    try:
        check_request(parse_request(request), config)
    except InvalidInput as exc:
        print(f"InvalidInput: {exc}", file=sys.stderr)
        return 2
    payload = json.dumps(request)
    if args.print:
        print(payload)
        arn = args.state_machine_arn or os.environ.get("STATE_MACHINE_ARN", "$STATE_MACHINE_ARN")
        print(f"aws stepfunctions start-execution --state-machine-arn {arn} --input {shlex.quote(payload)}")
        return 0
    import boto3
    from botocore.exceptions import ClientError, NoCredentialsError, NoRegionError

    try:
        print(start(args, payload, config, session or boto3.Session()))
    except StartError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (NoCredentialsError, NoRegionError, ClientError) as exc:
        print(f"error: {aws_failure(exc, no_region=NO_REGION)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
