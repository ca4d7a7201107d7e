"""The IAM contract of a rehearsal: every AWS call a step makes is authorized against its role.

- `requests.py` turns one AWS API call (service, operation, parameters) into the IAM authorization
  requests AWS evaluates for it: the action, the resource ARN (or "*") and the condition context,
  as the Service Authorization Reference lists them.
- `policy.py` evaluates a role's identity-based policies for one such request, as IAM's policy
  evaluation logic does (explicit Deny, then Allow, else the implicit deny).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class AuthorizationRequest:
    """One authorization AWS makes for a call.

    `context` holds the condition keys present in the request, each with its values (a single-valued key
    has one). `condition_keys` lists the keys that apply to this action and resource (from the Service
    Authorization Reference) but may be absent, e.g. "aws:RequestTag/*" when no tag was sent. A policy
    condition on a key in neither, and not a global key the request carries, is an error: the evaluator
    cannot say how AWS would decide, so it refuses rather than guess.
    """

    action: str  # "ec2:DeregisterImage"
    resource: str  # an ARN, or "*" for actions without resource types
    context: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    condition_keys: frozenset[str] = frozenset()  # patterns like "aws:ResourceTag/*" allowed
    why: str = ""  # e.g. "StartInstanceRefresh launches from the launch template" for a dependent check
    # A dependent check whose denial AWS reports inside the call's result instead of refusing the call:
    # DeregisterImage(DeleteAssociatedSnapshots) leaves a snapshot it may not delete, "missing-permissions".
    partial: bool = False
