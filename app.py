#!/usr/bin/env python3
"""CDK entry point: validate the configuration once, build the one stack, run cdk-nag on it.

Works offline: no credentials, no lookups, no Docker.
"""

from __future__ import annotations

import sys

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from stacks.config import CONTEXT_KEY, ConfigError, PipelineConfig, load_config
from stacks.pipeline_stack import PipelineStack


def build_app(app: cdk.App, config: PipelineConfig) -> PipelineStack:
    env = None
    if config.environment.account or config.environment.region:
        env = cdk.Environment(account=config.environment.account, region=config.environment.region)
    stack = PipelineStack(
        app,
        f"{config.application}-ami-pipeline",
        config=config,
        env=env,
        description=f"Immutable AMI deployments for {config.application}: Image Builder + Step Functions",
    )
    cdk.Tags.of(stack).add("immutable-ami:application", config.application)
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True))
    return stack


def main() -> None:
    app = cdk.App()
    try:
        config = load_config(app.node.try_get_context(CONTEXT_KEY))
    except ConfigError as exc:
        sys.exit(f"cdk.json: {exc}")
    build_app(app, config)
    app.synth()


if __name__ == "__main__":
    main()
