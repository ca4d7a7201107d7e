"""Evaluate a role's IAM identity-based policies for one authorization request, as IAM documents it.

The rehearsal asks whether a step's role may make each AWS call; this answers with IAM's decision (explicit
Deny, else Allow, else the implicit deny) and the statements that decided it. Whatever the IAM User Guide
does not pin down (an operator not implemented here, a policy variable, an unresolved intrinsic, a key the
request does not describe) raises instead of guessing, so a rehearsal never passes on a misreading.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any, Literal

from rehearsal.iam import AuthorizationRequest

Decision = Literal["Allow", "ExplicitDeny", "ImplicitDeny"]


class UnknownConditionKeyError(Exception):
    """A statement that applies conditions on a key the request neither carries nor lists."""


class UnsupportedPolicyError(Exception):
    """The policy uses an operator, variable or element this evaluator does not implement."""


@dataclass(frozen=True)
class Evaluation:
    decision: Decision
    matched: tuple[str, ...]  # Sids (or "statement N of policy NAME") of the statements that decided it


@dataclass(frozen=True)
class _Operator:
    name: str  # as written, e.g. "ForAllValues:StringNotLike"
    base: str  # the positive comparison, e.g. "StringLike"
    negated: bool
    if_exists: bool
    quantifier: str  # "", "ForAnyValue" or "ForAllValues"


@dataclass(frozen=True)
class _Condition:
    operator: _Operator
    key: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class _Statement:
    label: str
    effect: str
    actions: tuple[str, ...]
    not_action: bool
    resources: tuple[str, ...]
    not_resource: bool
    conditions: tuple[_Condition, ...]


@lru_cache(maxsize=2048)
def _glob(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    """`*` is any run of characters, `?` exactly one; nothing else is special."""
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(body, re.DOTALL | (re.IGNORECASE if ignore_case else 0))


@lru_cache(maxsize=2048)
def _resource_glob(pattern: str) -> re.Pattern[str]:
    # "IAM JSON policy elements: Resource", https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_resource.html
    # Wildcards work "within the individual segments of an ARN (the parts separated by colons)"; "If the *
    # wildcard is the last character of a resource ARN segment, it can expand to match beyond the colon
    # boundaries." So a `*` ending a segment (or the pattern) is free; any other `*`, and `?`, stay put.
    parts = []
    for i, c in enumerate(pattern):
        if c == "*":
            parts.append(".*" if i + 1 == len(pattern) or pattern[i + 1] == ":" else "[^:]*")
        else:
            parts.append("[^:]" if c == "?" else re.escape(c))
    return re.compile("".join(parts), re.DOTALL)


def _decimal(text: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation:
        raise UnsupportedPolicyError(f"{text!r} is not a number a Numeric operator can compare") from None


def _numeric(compare: Callable[[Decimal, Decimal], bool]) -> Callable[[str, str], bool]:
    return lambda value, wanted: compare(_decimal(value), _decimal(wanted))


def _arn_like(value: str, pattern: str) -> bool:
    # "IAM JSON policy elements: Condition operators" (ARN condition operators),
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html
    # "Each of the six colon-delimited components of the ARN is checked separately and each can include"
    # wildcards; case-sensitive. ArnEquals and ArnLike "behave identically". A value that is not an ARN
    # does not match.
    got = value.split(":", 5)
    return len(got) == 6 and all(_glob(p, False).fullmatch(g) for p, g in zip(pattern.split(":", 5), got, strict=True))


# Condition operators, same page: StringEquals is "Exact matching, case sensitive", StringLike takes `*`
# and `?` "anywhere in the string", Bool compares "true"/"false". Date, IP address and Binary operators
# are documented but not implemented here: they raise UnsupportedPolicyError.
_POSITIVE: dict[str, Callable[[str, str], bool]] = {
    "StringEquals": operator.eq,
    "StringEqualsIgnoreCase": lambda value, wanted: value.casefold() == wanted.casefold(),
    "StringLike": lambda value, wanted: _glob(wanted, False).fullmatch(value) is not None,
    "ArnEquals": _arn_like,
    "ArnLike": _arn_like,
    "NumericEquals": _numeric(operator.eq),
    "NumericLessThan": _numeric(operator.lt),
    "NumericLessThanEquals": _numeric(operator.le),
    "NumericGreaterThan": _numeric(operator.gt),
    "NumericGreaterThanEquals": _numeric(operator.ge),
    "Bool": lambda value, wanted: value.lower() == wanted.lower(),
}
_NEGATED = frozenset(  # each is its positive operator with "Not" removed
    {"StringNotEquals", "StringNotEqualsIgnoreCase", "StringNotLike", "ArnNotEquals", "ArnNotLike", "NumericNotEquals"}
)


def _parse_operator(name: str, where: str) -> _Operator:
    quantifier, _, rest = name.rpartition(":")
    base = rest.removesuffix("IfExists")
    if_exists = base != rest
    if quantifier not in ("", "ForAnyValue", "ForAllValues"):
        raise UnsupportedPolicyError(f"{where}: unknown set operator in {name!r}")
    # Same page, "...IfExists condition operators": "You can add IfExists to the end of any condition
    # operator name except the Null condition". The docs do not say how IfExists combines with
    # ForAnyValue/ForAllValues (which have their own rule for a missing key), so that is refused.
    if base == "Null" and (if_exists or quantifier):
        raise UnsupportedPolicyError(f"{where}: {name!r}: Null takes neither IfExists nor a set operator")
    if if_exists and quantifier:
        raise UnsupportedPolicyError(f"{where}: {name!r}: IfExists with a set operator is not documented")
    if base != "Null" and base not in _POSITIVE and base not in _NEGATED:
        raise UnsupportedPolicyError(f"{where}: condition operator {name!r} is not implemented")
    negated = base in _NEGATED
    return _Operator(name, base.replace("Not", "", 1) if negated else base, negated, if_exists, quantifier)


def _plain(value: Any, where: str) -> str:
    if isinstance(value, dict):
        raise UnsupportedPolicyError(f"{where}: unresolved value {value!r} (a CloudFormation intrinsic?)")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    raise UnsupportedPolicyError(f"{where}: value {value!r} is not a string, number or boolean")


def _strings(value: Any, where: str) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    out = tuple(_plain(item, where) for item in items)
    if not out:
        raise UnsupportedPolicyError(f"{where}: empty list")
    # "IAM policy elements: Variables and tags", https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_variables.html
    # Variables (${aws:username}, ${*}, ...) go in Resource and Condition values; this evaluator does not
    # substitute them.
    if any("${" in item for item in out):
        raise UnsupportedPolicyError(f"{where}: policy variables are not implemented: {out!r}")
    return out


def _check(op: _Operator, values: tuple[str, ...], where: str) -> tuple[str, ...]:
    if op.base in ("Null", "Bool") and any(v.lower() not in ("true", "false") for v in values):
        raise UnsupportedPolicyError(f"{where}: {op.name} takes true or false, not {values!r}")
    if op.base.startswith("Numeric"):
        for value in values:
            _decimal(value)
    if op.base.startswith("Arn") and any(len(v.split(":", 5)) != 6 for v in values):
        raise UnsupportedPolicyError(f"{where}: {op.name} needs six-part ARN patterns, not {values!r}")
    return values


def _parse_conditions(block: Any, where: str) -> tuple[_Condition, ...]:
    if not isinstance(block, Mapping):
        raise UnsupportedPolicyError(f"{where}: Condition must be an object")
    out = []
    for name, keys in block.items():
        op = _parse_operator(name, where)
        if not isinstance(keys, Mapping):
            raise UnsupportedPolicyError(f"{where}: {name} must map condition keys to values")
        for key, value in keys.items():
            out.append(_Condition(op, key, _check(op, _strings(value, f"{where}, {name} {key}"), where)))
    return tuple(out)


def _either(raw: Mapping[str, Any], element: str, where: str) -> tuple[tuple[str, ...], bool]:
    # "IAM JSON policy elements: Action" / "...: Resource": "Statements must include either an Action or
    # NotAction element" (likewise Resource or NotResource); each is a string or a list of them.
    present = [name for name in (element, "Not" + element) if name in raw]
    if len(present) != 1:
        raise UnsupportedPolicyError(f"{where}: needs exactly one of {element} and Not{element}")
    return _strings(raw[present[0]], f"{where}, {present[0]}"), present[0] != element


_STATEMENT_ELEMENTS = frozenset({"Sid", "Effect", "Action", "NotAction", "Resource", "NotResource", "Condition"})


def _parse_statement(raw: Any, where: str) -> _Statement:
    if not isinstance(raw, Mapping):
        raise UnsupportedPolicyError(f"{where}: a statement must be an object")
    # Anything else (Principal, NotPrincipal, typos) is not an identity-based policy element we implement.
    if extra := sorted(set(raw) - _STATEMENT_ELEMENTS):
        raise UnsupportedPolicyError(f"{where}: unsupported statement element(s) {extra}")
    label = str(raw["Sid"]) if raw.get("Sid") else where
    # "IAM JSON policy elements: Effect", https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_effect.html
    # "Valid values for Effect are Allow and Deny. The Effect value is case sensitive."
    if raw.get("Effect") not in ("Allow", "Deny"):
        raise UnsupportedPolicyError(f"{label}: Effect must be 'Allow' or 'Deny', not {raw.get('Effect')!r}")
    actions, not_action = _either(raw, "Action", label)
    resources, not_resource = _either(raw, "Resource", label)
    conditions = _parse_conditions(raw.get("Condition", {}), label)
    return _Statement(label, raw["Effect"], actions, not_action, resources, not_resource, conditions)


def _parse_policy(name: str, document: Any) -> list[_Statement]:
    if not isinstance(document, Mapping) or set(document) - {"Version", "Id", "Statement"}:
        raise UnsupportedPolicyError(f"policy {name}: expected an object with Version, Id and Statement")
    # "IAM JSON policy elements: Version", https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_version.html
    if document.get("Version", "2008-10-17") not in ("2012-10-17", "2008-10-17"):
        raise UnsupportedPolicyError(f"policy {name}: unknown Version {document.get('Version')!r}")
    raw = document.get("Statement")
    items = [raw] if isinstance(raw, Mapping) else raw
    if not isinstance(items, list):
        raise UnsupportedPolicyError(f"policy {name}: Statement must be an object or a list")
    return [_parse_statement(item, f"statement {i} of policy {name}") for i, item in enumerate(items, 1)]


def _action_matches(statement: _Statement, action: str) -> bool:
    # "IAM JSON policy elements: Action", https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_action.html
    # "The prefix and the action name are case insensitive"; `*` and `?` wildcards. NotAction
    # ("IAM JSON policy elements: NotAction", https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_notaction.html)
    # "explicitly matches everything except the specified list of actions".
    hit = any(_glob(pattern, True).fullmatch(action) for pattern in statement.actions)
    return hit != statement.not_action


def _resource_matches(statement: _Statement, resource: str) -> bool:
    # A request resource of "*" (an action without resource types) is matched only by a pattern of stars.
    # The NotAction page says an Allow on "arn:aws:s3:::*" "does not allow users to use the
    # ListAllMyBuckets S3 API operation, because that action requires the "*" resource"; reading "*" as a
    # literal that ARN patterns cannot reach keeps such an Allow from granting more than it names.
    # NotResource ("IAM JSON policy elements: NotResource",
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_notresource.html)
    # "matches every resource except those specified".
    if resource == "*":
        hit = any(not pattern.strip("*") for pattern in statement.resources)
    else:
        hit = any(_resource_glob(pattern).fullmatch(resource) for pattern in statement.resources)
    return hit != statement.not_resource


def _lookup(context: Mapping[str, tuple[str, ...]], key: str) -> tuple[str, ...] | None:
    # "IAM JSON policy elements: Condition", https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition.html
    # "Context key names are not case-sensitive", tag-key part included ("aws:ResourceTag/TagKey1" matches
    # a tag key "TagKey1 or tagkey1, but not both"). Two request keys differing only in case are refused.
    hits = [values for name, values in context.items() if name.lower() == key.lower()]
    if len(hits) > 1:
        raise UnsupportedPolicyError(f"the request carries {key!r} in more than one letter case")
    return hits[0] if hits else None


def _is_known(key: str, request: AuthorizationRequest) -> bool:
    wanted = key.lower()
    if any(name.lower() == wanted for name in request.context):
        return True
    for pattern in (p.lower() for p in request.condition_keys):
        if pattern == wanted or (pattern.endswith("/*") and wanted.startswith(pattern[:-1]) and wanted != pattern[:-1]):
            return True
    return False


def _matches_one(op: _Operator, value: str, wanted: tuple[str, ...]) -> bool:
    # "Conditions with multiple context keys or values", https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_multi-value-conditions.html
    # The values of one key are ORed; for "a single negated matching condition operator" they are NORed.
    hit = any(_POSITIVE[op.base](value, w) for w in wanted)
    return not hit if op.negated else hit


def _holds(condition: _Condition, context: Mapping[str, tuple[str, ...]]) -> bool:
    op, values = condition.operator, _lookup(context, condition.key)
    if op.base == "Null":
        # Condition operators page, Null: "true (the key doesn't exist — it is null) or false (the key
        # exists and its value is not null)". An empty value set counts as null, as the multivalued
        # examples page treats "context keys with empty values" alongside missing ones.
        return any((w.lower() == "true") == (not values) for w in condition.values)
    # "Single-valued vs. multivalued context keys", https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-single-vs-multi-valued-context-keys.html
    # ForAllValues is true when every request value matches; it "also returns true if there are no context
    # keys in the request" ("Multivalued context key examples",
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition_examples-multi-valued-context-keys.html).
    # ForAnyValue needs one matching value, so it is false for a missing or empty key.
    if op.quantifier == "ForAllValues":
        return all(_matches_one(op, value, condition.values) for value in values or ())
    if op.quantifier == "ForAnyValue":
        return any(_matches_one(op, value, condition.values) for value in values or ())
    if not values:
        # Condition operators page, "Important": a key "not present in the request context" makes the
        # condition false, but true for a negated operator "such as StringNotLike or ArnNotLike"; with
        # ...IfExists, "If the key is not present, evaluate the condition element as true".
        return op.if_exists or op.negated
    if len(values) > 1:
        # Same page: "Multivalued context keys require a condition set operator."
        raise UnsupportedPolicyError(f"{op.name} on {condition.key!r}, which has several values {values!r}")
    return _matches_one(op, values[0], condition.values)


def _applies(statement: _Statement, request: AuthorizationRequest) -> bool:
    if not (_action_matches(statement, request.action) and _resource_matches(statement, request.resource)):
        return False
    for condition in statement.conditions:
        if not _is_known(condition.key, request):
            where = f"{request.action} on {request.resource}"
            raise UnknownConditionKeyError(f"{statement.label} conditions on {condition.key!r}, unknown to {where}")
    # Conditions page and multiple-values page: operators and keys are ANDed. All are evaluated, so an
    # error in any of them surfaces whatever the order.
    results = [_holds(condition, request.context) for condition in statement.conditions]
    return all(results)


def evaluate(policies: Mapping[str, Mapping[str, Any]], request: AuthorizationRequest) -> Evaluation:
    """policies: policy name -> policy document ({"Version": "2012-10-17", "Statement": [...] or {...}})."""
    statements = [statement for name, document in policies.items() for statement in _parse_policy(name, document)]
    applying = [statement for statement in statements if _applies(statement, request)]
    # "How AWS enforcement code logic evaluates requests to allow or deny access",
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic_policy-eval-denyallow.html
    # "An explicit deny overrides an explicit allow"; without an applicable Allow the request is implicitly
    # denied ("The difference between explicit and implicit denies",
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic_AccessPolicyLanguage_Interplay.html).
    denies = tuple(s.label for s in applying if s.effect == "Deny")
    if denies:
        return Evaluation("ExplicitDeny", denies)
    allows = tuple(s.label for s in applying if s.effect == "Allow")
    return Evaluation("Allow", allows) if allows else Evaluation("ImplicitDeny", ())
