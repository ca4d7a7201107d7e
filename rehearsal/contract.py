"""The IAM contract: every AWS call a step makes is authorized against its role in the template.

While a function's handler runs (or the state machine calls a service itself), a botocore `before-call`
hook turns the call into IAM authorization requests (rehearsal.iam.requests) and evaluates the role's
identity policies from the template (rehearsal.iam.policy). A denied call answers as the service answers
an unauthorized caller, so the step takes its real failure path:

| service | error code | where AWS documents it |
|---|---|---|
| EC2 | `UnauthorizedOperation` (403) | Amazon EC2 API Reference, "Error codes for the Amazon EC2 API" |
| Auto Scaling, ELB, CloudWatch | `AccessDenied` (403) | each API Reference's "Common Errors" |
| SNS | `AuthorizationError` (403) | Amazon SNS API Reference, Publish, "Errors" |
| DynamoDB, SSM, Step Functions, Lambda, Image Builder, | `AccessDeniedException` | each API Reference's |
| Secrets Manager | | "Common Errors" |

A `partial` request (rehearsal.iam: EC2 deleting an AMI's snapshots in DeregisterImage) is not a refusal: AWS
answers the call and reports the snapshot "missing-permissions" (Amazon EC2 API Reference, DeleteSnapshotReturnCode:
https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DeleteSnapshotReturnCode.html); such denials go to
`partially_denied`, and the
emulation reads the current call's with `partial_denials()`.

Every denial is recorded (`denied`: step, action, resource) and fails the scenario unless it expects it;
every allowed action is recorded too (`observed`), so a test can remove each one from its role and see the
rehearsal notice. Calls made by the harness itself (building the world, reading the outcome) run on the
main thread outside any invocation and are not checked.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError

from rehearsal.artifact import Artifact
from rehearsal.iam import AuthorizationRequest
from rehearsal.iam.policy import evaluate
from rehearsal.iam.requests import Lookup, Where, requests_for
from rehearsal.intrinsics import Resolver

DENIED = {
    "ec2": ("UnauthorizedOperation", 403),
    "autoscaling": ("AccessDenied", 403),
    "elasticloadbalancing": ("AccessDenied", 403),
    "monitoring": ("AccessDenied", 403),
    "sns": ("AuthorizationError", 403),
}
DEFAULT_DENIED = ("AccessDeniedException", 400)


def role_policies(artifact: Artifact, resolver: Resolver, role: str) -> dict[str, Any]:
    """A role's identity policies from the template, resolved in the emulated account."""
    return {name: resolver.resolve(doc, f"{role}.{name}") for name, doc in artifact.role_policies(role).items()}


@dataclass(frozen=True)
class Principal:
    name: str  # the step ("lock"), or "state machine"
    role: str  # the role's logical id in the template


class Contract:
    def __init__(self, artifact: Artifact, resolver: Resolver, lookup: Lookup) -> None:
        machine_role = artifact.resources[artifact.state_machine]["Properties"]["RoleArn"]["Fn::GetAtt"][0]
        roles = {f.role for f in artifact.functions.values()} | {machine_role}
        self._policies = {role: role_policies(artifact, resolver, role) for role in sorted(roles)}
        account = resolver.account
        self._where = Where(account.partition, account.region, account.account)
        self._lookup = lookup
        self._local = threading.local()
        self.state_machine = Principal("state machine", machine_role)
        self.denied: list[dict[str, str]] = []
        self.partially_denied: list[dict[str, str]] = []  # partial requests denied: the call went on without them
        self.errors: list[str] = []  # calls the contract could not judge: each fails the scenario
        self.observed: dict[tuple[str, str], int] = {}  # (role logical id, action) → allowed calls
        self.allowed: list[tuple[str, AuthorizationRequest]] = []  # (role logical id, request), in call order

    @contextlib.contextmanager
    def acting_as(self, principal: Principal) -> Iterator[None]:
        previous = getattr(self._local, "principal", None)
        self._local.principal = principal
        try:
            yield
        finally:
            self._local.principal = previous

    @contextlib.contextmanager
    def as_harness(self) -> Iterator[None]:
        """The world moving on by the scenario's script (an alarm firing, another deployment's lock): not a step."""
        previous = getattr(self._local, "harness", False)
        self._local.harness = True
        try:
            yield
        finally:
            self._local.harness = previous

    def current(self) -> Principal | None:
        """Who makes a call on this thread: a function, the state machine (its interpreter thread), or the harness."""
        if getattr(self._local, "harness", False):
            return None
        principal = getattr(self._local, "principal", None)
        if principal is None and threading.current_thread() is not threading.main_thread():
            return self.state_machine
        return principal

    def check(self, service: str, operation: str, params: dict[str, Any]) -> tuple[AWSResponse, dict[str, Any]] | None:
        """For the before-call hook: None when allowed (the call goes on), else the service's denial."""
        principal = self.current()
        if principal is None:
            return None
        try:
            refused = self._refused(principal, service, operation, params)
        except Exception as exc:  # an unmapped call or policy: loud, never a silent pass
            self.errors.append(f"{principal.name}: {service}.{operation}: {type(exc).__name__}: {exc}")
            raise
        if refused is None:
            return None
        code, status = DENIED.get(service, DEFAULT_DENIED)
        message = f"{principal.name} is not authorized to perform: {refused.action} on resource: {refused.resource}"
        parsed = {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}
        return AWSResponse(None, status, {}, None), parsed

    def partial_denials(self) -> list[str]:
        """The resources of the partial requests denied in this thread's last checked call."""
        return list(getattr(self._local, "partial", []))

    def authorize(self, principal: Principal, service: str, operation: str, params: dict[str, Any]) -> None:
        """For calls the harness makes on a principal's behalf (the state machine invoking a function)."""
        try:
            refused = self._refused(principal, service, operation, params)
        except Exception as exc:
            self.errors.append(f"{principal.name}: {service}.{operation}: {type(exc).__name__}: {exc}")
            raise
        if refused is not None:
            code, status = DENIED.get(service, DEFAULT_DENIED)
            raise ClientError(
                {
                    "Error": {"Code": code, "Message": f"not authorized to perform {refused.action}"},
                    "ResponseMetadata": {"HTTPStatusCode": status, "RequestId": str(uuid.uuid4())},
                },
                operation,
            )

    def _refused(
        self, principal: Principal, service: str, operation: str, params: dict[str, Any]
    ) -> AuthorizationRequest | None:
        policies = self._policies.get(principal.role)
        if policies is None:
            raise RuntimeError(f"{principal.name}: role {principal.role} is not in the template")
        self._local.partial = []
        for request in requests_for(service, operation, params, self._where, self._lookup):
            decision = evaluate(policies, request).decision
            if decision != "Allow" and request.partial:
                self._local.partial.append(request.resource)
                self.partially_denied.append(
                    {"step": principal.name, "action": request.action, "resource": request.resource, "why": request.why}
                )
                continue
            if decision != "Allow":
                self.denied.append(
                    {
                        "step": principal.name,
                        "action": request.action,
                        "resource": request.resource,
                        **({"why": request.why} if request.why else {}),
                    }
                )
                return request
            key = (principal.role, request.action)
            self.observed[key] = self.observed.get(key, 0) + 1
            self.allowed.append((principal.role, request))
        return None
