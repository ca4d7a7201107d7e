"""What an orchestration costs at AWS's published on-demand prices (US East (N. Virginia), equal in Europe (Ireland)).

Free tiers are left out: the figures compare designs, not bills.
"""

from __future__ import annotations

# Step Functions Standard Workflows: $0.025 per 1,000 state transitions (retries count as transitions).
# https://aws.amazon.com/step-functions/pricing/ ("State transitions pricing table": US East (N. Virginia)
# and Europe (Ireland) both $0.0250 per 1,000).
STEP_FUNCTIONS_STANDARD_PER_TRANSITION = 0.025 / 1_000
# Lambda requests: $0.20 per 1M requests. https://aws.amazon.com/lambda/pricing/ (pricing examples:
# "The monthly request price is $0.20 per 1 million requests").
LAMBDA_PER_REQUEST = 0.20 / 1_000_000
# Lambda duration on Arm (arm64, Graviton): $0.0000133334 per GB-second, first 7.5 billion GB-seconds a month.
# https://aws.amazon.com/lambda/pricing/ ("Arm Price" tab; the page renders its rate table client-side, the
# figure as transcribed in https://cloudchipr.com/blog/aws-lambda-pricing, "ARM Pricing").
LAMBDA_ARM64_PER_GB_SECOND = 0.0000133334
MB_PER_GB = 1024  # Lambda bills memory in GB of 1,024 MB (128 MB = 0.125 GB)


def orchestration_cost(transitions: int, lambda_invocations: int, lambda_gb_seconds: float) -> float:
    """US dollars for a workflow's state transitions, its Lambda requests and their duration (arm64)."""
    if transitions < 0 or lambda_invocations < 0 or lambda_gb_seconds < 0:
        raise ValueError(
            f"counts must not be negative (transitions={transitions}, "
            f"lambda_invocations={lambda_invocations}, lambda_gb_seconds={lambda_gb_seconds})"
        )
    return (
        transitions * STEP_FUNCTIONS_STANDARD_PER_TRANSITION
        + lambda_invocations * LAMBDA_PER_REQUEST
        + lambda_gb_seconds * LAMBDA_ARM64_PER_GB_SECOND
    )


def lambda_gb_seconds(invocations: int, memory_mb: int, mean_duration_seconds: float) -> float:
    """Billed GB-seconds of `invocations` runs of a function with `memory_mb` lasting `mean_duration_seconds` each."""
    if invocations < 0 or memory_mb <= 0 or mean_duration_seconds < 0:
        raise ValueError(
            f"need invocations >= 0, memory_mb > 0, mean_duration_seconds >= 0 "
            f"(got {invocations}, {memory_mb}, {mean_duration_seconds})"
        )
    return invocations * (memory_mb / MB_PER_GB) * mean_duration_seconds
