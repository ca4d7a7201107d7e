#!/usr/bin/env python3
"""Start a deployment by hand: build the execution input, check it, start the state machine.

    python scripts/start_deployment.py deploy --commit "$(git rev-parse HEAD)" [--stages test] [--dry-run]
    python scripts/start_deployment.py deploy-image --ami ami-0abc1234def567890
    python scripts/start_deployment.py rollback --to previous | --to ami-...
    python scripts/start_deployment.py rebuild-base
    ... --print    prints the JSON and the equivalent `aws stepfunctions start-execution` command only

Checks that need AWS (is the commit in the CodeCommit repository, is the AMI ours, is it still kept) happen in
the state machine's first state.
The state machine ARN comes from --state-machine-arn, $STATE_MACHINE_ARN, or the stack's
StateMachineArn output (CloudFormation, stack `<application>-ami-pipeline`). The input is checked
with the state machine's own first-state checks (shape, combinations, source, stages) against the
configuration in cdk.json, so a typo fails here, not in AWS. A commit is the full 40-hex SHA: a short one can
name a tag or branch, and is refused (`git rev-parse <sha>` prints the full one).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "lambdas"))  # the Lambda code root, as in the runtime

from validate_request.logic import check_request, parse_request  # noqa: E402

from shared.config import DeployConfig  # noqa: E402
from shared.errors import InvalidInput  # noqa: E402


def deploy_config() -> DeployConfig:
    """The configuration `cdk deploy` used: cdk.json's immutableAmi context, validated as at synth."""
    sys.path.insert(0, str(ROOT))
    stacks_config = importlib.import_module("stacks.config")  # the CDK side's loader, imported only here
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


def state_machine_arn(args: argparse.Namespace) -> str:
    if args.state_machine_arn or os.environ.get("STATE_MACHINE_ARN"):
        return str(args.state_machine_arn or os.environ["STATE_MACHINE_ARN"])
    import boto3

    stack = boto3.client("cloudformation").describe_stacks(StackName=args.stack)["Stacks"][0]
    for output in stack.get("Outputs", []):
        if output["OutputKey"] == "StateMachineArn":
            return str(output["OutputValue"])
    raise SystemExit(f"stack {args.stack} has no StateMachineArn output")


def main(argv: list[str] | None = None) -> int:
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
    parser.add_argument("--stack", default="web-app-ami-pipeline")
    parser.add_argument("--print", action="store_true", help="print the input and the aws CLI command; start nothing")
    args = parser.parse_args(argv)

    request = build_request(args)
    try:
        check_request(parse_request(request), deploy_config())
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

    execution = boto3.client("stepfunctions").start_execution(stateMachineArn=state_machine_arn(args), input=payload)
    print(execution["executionArn"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
