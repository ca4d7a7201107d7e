"""The IAM policy evaluator against the examples of AWS's IAM User Guide.

Each test names the page its example comes from; where no page has one, the test says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from rehearsal.iam import AuthorizationRequest
from rehearsal.iam.policy import Evaluation, UnknownConditionKeyError, UnsupportedPolicyError, evaluate

ACCOUNT = "111122223333"


def request(
    action: str,
    resource: str = "*",
    context: Mapping[str, tuple[str, ...]] | None = None,
    condition_keys: frozenset[str] = frozenset(),
) -> AuthorizationRequest:
    return AuthorizationRequest(action, resource, dict(context or {}), condition_keys)


def policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def decide(statements: dict[str, Any] | list[dict[str, Any]], req: AuthorizationRequest) -> str:
    document = policy(*statements) if isinstance(statements, list) else policy(statements)
    return evaluate({"p": document}, req).decision


# --- Policy evaluation logic -------------------------------------------------------------------------
# "The difference between explicit and implicit denies": AllowGetList allows iam:Get* and iam:List*,
# DenyReports denies iam:*Report, everything else in IAM is implicitly denied.
GET_LIST_DENY_REPORTS = policy(
    {"Sid": "AllowGetList", "Effect": "Allow", "Action": ["iam:Get*", "iam:List*"], "Resource": "*"},
    {"Sid": "DenyReports", "Effect": "Deny", "Action": "iam:*Report", "Resource": "*"},
)


def test_allow_statement_that_matches_allows_and_names_its_sid() -> None:
    # Given the documented AllowGetList/DenyReports policy
    # When the role calls iam:GetUser
    result = evaluate({"reports": GET_LIST_DENY_REPORTS}, request("iam:GetUser"))
    # Then AllowGetList allows it
    assert result == Evaluation("Allow", ("AllowGetList",))


def test_action_no_statement_allows_is_implicitly_denied() -> None:
    # Given the same policy / When the role calls iam:CreatePolicy
    result = evaluate({"reports": GET_LIST_DENY_REPORTS}, request("iam:CreatePolicy"))
    # Then nothing applies: implicit deny, nothing matched
    assert result == Evaluation("ImplicitDeny", ())


def test_deny_overrides_allow_in_the_same_policy() -> None:
    # Given the same policy / When the role calls iam:GetOrganizationsAccessReport (Get*, and *Report)
    result = evaluate({"reports": GET_LIST_DENY_REPORTS}, request("iam:GetOrganizationsAccessReport"))
    # Then the explicit deny wins and only the deciding statement is reported
    assert result == Evaluation("ExplicitDeny", ("DenyReports",))


def test_explicit_deny_in_one_policy_beats_allow_in_another() -> None:
    # Given the page's sequel: another policy grants iam:GenerateCredentialReport
    grant = policy({"Sid": "Grant", "Effect": "Allow", "Action": "iam:GenerateCredentialReport", "Resource": "*"})
    # When the role calls it
    result = evaluate({"grant": grant, "reports": GET_LIST_DENY_REPORTS}, request("iam:GenerateCredentialReport"))
    # Then "report-related requests are still denied because of this explicit deny"
    assert result == Evaluation("ExplicitDeny", ("DenyReports",))


def test_no_policies_means_implicit_deny() -> None:
    # Given a role without policies / When it calls anything / Then it is implicitly denied
    assert evaluate({}, request("ec2:DescribeImages")) == Evaluation("ImplicitDeny", ())


def test_statement_may_be_a_single_object_and_unnamed_statements_are_named_by_position() -> None:
    # Given a policy whose Statement is one object without a Sid
    document = {"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "ec2:*", "Resource": "*"}}
    # When it is evaluated
    result = evaluate({"ec2-all": document}, request("ec2:DescribeImages"))
    # Then the statement is named by its (1-based) position in its policy
    assert result == Evaluation("Allow", ("statement 1 of policy ec2-all",))


def test_every_allow_statement_that_applies_is_reported() -> None:
    # Given two statements that both allow ec2:DescribeImages
    statements = [
        {"Sid": "A", "Effect": "Allow", "Action": "ec2:Describe*", "Resource": "*"},
        {"Sid": "B", "Effect": "Allow", "Action": "*", "Resource": "*"},
    ]
    # When evaluated / Then both are reported, in policy order
    assert evaluate({"p": policy(*statements)}, request("ec2:DescribeImages")).matched == ("A", "B")


# --- Action and NotAction ----------------------------------------------------------------------------


def test_action_matching_ignores_case() -> None:
    # Given "IAM JSON policy elements: Action": "iam:ListAccessKeys is the same as IAM:listaccesskeys"
    statement = {"Effect": "Allow", "Action": "IAM:listaccesskeys", "Resource": "*"}
    # When the role calls iam:ListAccessKeys / Then it is allowed
    assert decide(statement, request("iam:ListAccessKeys")) == "Allow"


@pytest.mark.parametrize(
    ("action", "decision"),
    [
        ("iam:CreateAccessKey", "Allow"),
        ("iam:DeleteAccessKey", "Allow"),
        ("iam:ListAccessKeys", "Allow"),
        ("iam:UpdateAccessKey", "Allow"),
        ("iam:ListUsers", "ImplicitDeny"),
        ("ec2:CreateAccessKey", "ImplicitDeny"),
    ],
)
def test_wildcards_in_the_action_name(action: str, decision: str) -> None:
    # Given the Action page's "iam:*AccessKey*" / When the role calls the action / Then only AccessKey ones
    assert decide({"Effect": "Allow", "Action": "iam:*AccessKey*", "Resource": "*"}, request(action)) == decision


def test_question_mark_in_action_matches_exactly_one_character() -> None:
    # Given "ec2:?escribeImages" (no page example: the Action page documents `?` as one character)
    statement = {"Effect": "Allow", "Action": "ec2:?escribeImages", "Resource": "*"}
    # When / Then it matches DescribeImages but not a name one character longer
    assert decide(statement, request("ec2:DescribeImages")) == "Allow"
    assert decide(statement, request("ec2:XDescribeImages")) == "ImplicitDeny"


def test_not_action_allow_grants_every_other_action() -> None:
    # Given the NotAction page's "allows users to access every action in every AWS service, except IAM"
    statement = {"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}
    # When / Then EC2 is allowed, IAM is not
    assert decide(statement, request("ec2:DeregisterImage", "arn:aws:ec2:us-east-1::image/ami-1")) == "Allow"
    assert decide(statement, request("iam:CreateUser", f"arn:aws:iam::{ACCOUNT}:user/Bob")) == "ImplicitDeny"


@pytest.mark.parametrize(
    ("action", "resource", "decision"),
    [
        ("s3:GetObject", "arn:aws:s3:::amzn-s3-demo-bucket/key", "Allow"),
        ("s3:DeleteBucket", "arn:aws:s3:::amzn-s3-demo-bucket", "ImplicitDeny"),
        # "This does not allow users to use the ListAllMyBuckets S3 API operation, because that action
        # requires the "*" resource."
        ("s3:ListAllMyBuckets", "*", "ImplicitDeny"),
    ],
)
def test_not_action_with_an_s3_resource(action: str, resource: str, decision: str) -> None:
    # Given the NotAction page's Allow of everything but s3:DeleteBucket on "arn:aws:s3:::*"
    statement = {"Effect": "Allow", "NotAction": "s3:DeleteBucket", "Resource": "arn:aws:s3:::*"}
    # When / Then
    assert decide(statement, request(action, resource)) == decision


@pytest.mark.parametrize(
    ("action", "mfa", "decision"),
    [
        ("ec2:DescribeImages", ("false",), "ExplicitDeny"),
        ("ec2:DescribeImages", None, "ExplicitDeny"),  # BoolIfExists: a missing key counts as true
        ("ec2:DescribeImages", ("true",), "Allow"),
        ("iam:ChangePassword", ("false",), "Allow"),
    ],
)
def test_not_action_deny_without_mfa(action: str, mfa: tuple[str, ...] | None, decision: str) -> None:
    # Given the NotAction page's DenyAllUsersNotUsingMFA, plus an Allow of everything
    deny = {
        "Sid": "DenyAllUsersNotUsingMFA",
        "Effect": "Deny",
        "NotAction": "iam:*",
        "Resource": "*",
        "Condition": {"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}},
    }
    allow = {"Effect": "Allow", "Action": "*", "Resource": "*"}
    context = {"aws:MultiFactorAuthPresent": mfa} if mfa else {}
    keys = frozenset({"aws:MultiFactorAuthPresent"})
    # When the role calls the action / Then non-IAM actions are denied unless MFA is present
    assert decide([deny, allow], request(action, context=context, condition_keys=keys)) == decision


# --- Resource and NotResource ------------------------------------------------------------------------


def test_resource_matching_is_case_sensitive() -> None:
    # Given the Resource page: "In the Resource element, the IAM user name is case sensitive"
    statement = {"Effect": "Allow", "Action": "iam:GetUser", "Resource": f"arn:aws:iam::{ACCOUNT}:user/Bob"}
    # When / Then Bob matches, bob does not
    assert decide(statement, request("iam:GetUser", f"arn:aws:iam::{ACCOUNT}:user/Bob")) == "Allow"
    assert decide(statement, request("iam:GetUser", f"arn:aws:iam::{ACCOUNT}:user/bob")) == "ImplicitDeny"


@pytest.mark.parametrize(
    ("key", "decision"),
    [
        ("1/test/object.jpg", "Allow"),
        ("1/2/test/object.jpg", "Allow"),
        ("1/2/test/3/object.jpg", "Allow"),
        ("1/2/3/test/4/object.jpg", "Allow"),
        ("1///test///object.jpg", "Allow"),
        ("1/test/.jpg", "Allow"),
        ("//test/object.jpg", "Allow"),
        ("1/test/", "Allow"),
        ("1-test/object.jpg", "ImplicitDeny"),
        ("test/object.jpg", "ImplicitDeny"),
        ("1/2/test.jpg", "ImplicitDeny"),
    ],
)
def test_resource_wildcards_span_slashes(key: str, decision: str) -> None:
    # Given the Resource page's "arn:aws:s3:::amzn-s3-demo-bucket/*/test/*" and its list of objects
    statement = {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::amzn-s3-demo-bucket/*/test/*"}
    # When the role reads the object / Then it is allowed exactly for the page's matching objects
    assert decide(statement, request("s3:GetObject", f"arn:aws:s3:::amzn-s3-demo-bucket/{key}")) == decision


def test_resource_star_inside_a_segment_does_not_cross_a_colon() -> None:
    # Given a `*` that is not the last character of its segment (Resource page: only a segment-final `*`
    # "can expand to match beyond the colon boundaries")
    statement = {"Effect": "Allow", "Action": "logs:*", "Resource": f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:a*z"}
    base = f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:"
    # When / Then it spans ordinary characters but not a colon; a segment-final `*` would
    assert decide(statement, request("logs:GetLogEvents", base + "abcz")) == "Allow"
    assert decide(statement, request("logs:GetLogEvents", base + "a:log-stream:z")) == "ImplicitDeny"
    final_star = {"Effect": "Allow", "Action": "logs:*", "Resource": f"arn:aws:logs:*:{ACCOUNT}:log-group:a*"}
    assert decide(final_star, request("logs:GetLogEvents", base + "a:log-stream:z")) == "Allow"


def test_request_resource_star_is_matched_only_by_a_star_resource() -> None:
    # Given an Allow scoped to image ARNs, and ec2:DescribeImages, which has no resource types ("*")
    scoped = {"Effect": "Allow", "Action": "ec2:DescribeImages", "Resource": "arn:aws:ec2:*::image/*"}
    everything = {"Effect": "Allow", "Action": "ec2:DescribeImages", "Resource": "*"}
    # When / Then only Resource "*" reaches it
    assert decide(scoped, request("ec2:DescribeImages")) == "ImplicitDeny"
    assert decide(everything, request("ec2:DescribeImages")) == "Allow"


@pytest.mark.parametrize(
    ("resource", "decision"),
    [
        ("arn:aws:s3:::HRBucket/Payroll", "Allow"),
        ("arn:aws:s3:::HRBucket/Payroll/march.csv", "Allow"),
        ("arn:aws:s3:::HRBucket/Recruiting/cv.pdf", "ExplicitDeny"),
        ("arn:aws:s3:::OtherBucket/file", "ExplicitDeny"),
    ],
)
def test_not_resource_deny_spares_only_the_listed_resources(resource: str, decision: str) -> None:
    # Given the NotResource page's HRPayroll Deny, and an Allow of all of S3 in another policy
    deny = policy(
        {
            "Effect": "Deny",
            "Action": "s3:*",
            "NotResource": ["arn:aws:s3:::HRBucket/Payroll", "arn:aws:s3:::HRBucket/Payroll/*"],
        }
    )
    allow = policy({"Effect": "Allow", "Action": "s3:*", "Resource": "*"})
    # When the group member reads the object / Then everything but Payroll is denied
    assert evaluate({"deny": deny, "allow": allow}, request("s3:GetObject", resource)).decision == decision


# --- Conditions -------------------------------------------------------------------------------------
IMAGE = "arn:aws:ec2:us-east-1::image/ami-0123456789abcdef0"
APP_TAG = "aws:ResourceTag/immutable-ami:application"
TAG_KEYS = frozenset({"aws:ResourceTag/*"})


def deregister_if_tagged(operator: str, value: Any) -> dict[str, Any]:
    return {
        "Effect": "Allow",
        "Action": "ec2:DeregisterImage",
        "Resource": "*",
        "Condition": {operator: {APP_TAG: value}},
    }


def test_string_equals_on_a_resource_tag() -> None:
    # Given an Allow conditioned on the image's application tag (Condition operators page, String)
    statement = deregister_if_tagged("StringEquals", "web")

    # When the image carries the tag with that value, another value, or another case
    def with_tag(value: str) -> str:
        return decide(statement, request("ec2:DeregisterImage", IMAGE, {APP_TAG: (value,)}, TAG_KEYS))

    # Then only the exact, case-sensitive value is allowed
    assert with_tag("web") == "Allow"
    assert with_tag("api") == "ImplicitDeny"
    assert with_tag("Web") == "ImplicitDeny"


def test_a_list_of_condition_values_is_ored() -> None:
    # Given StringEquals with two values ("Conditions with multiple context keys or values": OR)
    statement = deregister_if_tagged("StringEquals", ["web", "api"])
    # When / Then either value is allowed
    assert decide(statement, request("ec2:DeregisterImage", IMAGE, {APP_TAG: ("api",)}, TAG_KEYS)) == "Allow"


def test_condition_key_names_ignore_case_including_the_tag_key() -> None:
    # Given the Condition page: "aws:ResourceTag/TagKey1" matches a tag key "TagKey1 or tagkey1"
    statement = {
        "Effect": "Allow",
        "Action": "ec2:DeregisterImage",
        "Resource": "*",
        "Condition": {"StringEquals": {"AWS:resourcetag/TagKey1": "Value1"}},
    }
    # When the request carries the key as "aws:ResourceTag/tagkey1" / Then it matches
    req = request("ec2:DeregisterImage", IMAGE, {"aws:ResourceTag/tagkey1": ("Value1",)}, TAG_KEYS)
    assert decide(statement, req) == "Allow"


def test_string_equals_ignore_case() -> None:
    # Given the Condition page's StringEqualsIgnoreCase on aws:username "john"
    statement = {
        "Effect": "Allow",
        "Action": "iam:GetUser",
        "Resource": "*",
        "Condition": {"StringEqualsIgnoreCase": {"aws:username": "john"}},
    }
    # When the user is John / Then the condition holds
    assert decide(statement, request("iam:GetUser", context={"aws:username": ("John",)})) == "Allow"


def test_condition_on_an_absent_supported_key_is_false() -> None:
    # Given the Condition operators page's job-category example, and a caller without the principal tag
    statement = {
        "Effect": "Allow",
        "Action": "iam:*AccessKey*",
        "Resource": f"arn:aws:iam::{ACCOUNT}:user/*",
        "Condition": {"StringEquals": {"aws:PrincipalTag/job-category": "iamuser-admin"}},
    }
    req = request("iam:CreateAccessKey", f"arn:aws:iam::{ACCOUNT}:user/Bob", {}, frozenset({"aws:PrincipalTag/*"}))
    # When / Then "the condition returns false and the request is implicitly denied by this statement"
    assert decide(statement, req) == "ImplicitDeny"


@pytest.mark.parametrize(
    ("operator", "value"),
    [
        ("StringNotEquals", "web"),
        ("StringNotEqualsIgnoreCase", "web"),
        ("StringNotLike", "w*"),
        ("ArnNotEquals", "arn:aws:ec2:*:*:image/*"),
        ("ArnNotLike", "arn:aws:ec2:*:*:image/*"),
        ("NumericNotEquals", "1"),
    ],
)
def test_negated_operator_on_an_absent_key_is_true(operator: str, value: str) -> None:
    # Given the Condition operators page: a negated operator "such as StringNotLike or ArnNotLike" with the
    # key not present makes the condition true; here in a Deny
    deny = {"Effect": "Deny", "Action": "ec2:*", "Resource": "*", "Condition": {operator: {APP_TAG: value}}}
    allow = {"Effect": "Allow", "Action": "ec2:*", "Resource": "*"}
    # When the image has no such tag / Then the Deny applies
    assert decide([deny, allow], request("ec2:DeregisterImage", IMAGE, {}, TAG_KEYS)) == "ExplicitDeny"


@pytest.mark.parametrize(
    ("role", "decision"), [("audit", "ImplicitDeny"), ("security", "ImplicitDeny"), ("dev", "Allow")]
)
def test_negated_operator_with_several_values_is_a_nor(role: str, decision: str) -> None:
    # Given StringNotEquals with two values ("Conditions with multiple context keys or values": NOR)
    statement = {
        "Effect": "Allow",
        "Action": "s3:ListBucket",
        "Resource": "*",
        "Condition": {"StringNotEquals": {"aws:PrincipalTag/role": ["audit", "security"]}},
    }
    # When the principal's role tag is one of them or neither / Then it holds only for neither
    assert decide(statement, request("s3:ListBucket", context={"aws:PrincipalTag/role": (role,)})) == decision


@pytest.mark.parametrize(
    ("resource", "instance_type", "if_exists", "decision"),
    [
        ("instance/i-1", "t2.micro", True, "Allow"),
        ("instance/i-1", "m5.large", True, "ImplicitDeny"),
        ("image/ami-1", None, True, "Allow"),
        # "THISPOLICYDOESNOTWORK": without IfExists the image, which lacks the key, fails the check
        ("image/ami-1", None, False, "ImplicitDeny"),
        ("instance/i-1", "m3.medium", False, "Allow"),
    ],
)
def test_if_exists_checks_the_key_only_where_it_exists(
    resource: str, instance_type: str | None, if_exists: bool, decision: str
) -> None:
    # Given the Condition operators page's ec2:RunInstances example with StringLike(IfExists)
    operator = "StringLikeIfExists" if if_exists else "StringLike"
    statement = {
        "Sid": "RunInstance",
        "Effect": "Allow",
        "Action": "ec2:RunInstances",
        "Resource": "*",
        "Condition": {operator: {"ec2:InstanceType": ["t1.*", "t2.*", "m3.*"]}},
    }
    context = {"ec2:InstanceType": (instance_type,)} if instance_type else {}
    req = request(
        "ec2:RunInstances", f"arn:aws:ec2:us-east-1:{ACCOUNT}:{resource}", context, frozenset({"ec2:InstanceType"})
    )
    # When the resource is checked / Then
    assert decide(statement, req) == decision


@pytest.mark.parametrize(
    ("token_issue_time", "decision"), [(None, "Allow"), (("2020-01-01T00:00:01Z",), "ImplicitDeny")]
)
def test_null_true_requires_the_key_to_be_absent(token_issue_time: tuple[str, ...] | None, decision: str) -> None:
    # Given the Condition operators page's Null example: no temporary credentials (aws:TokenIssueTime absent)
    statement = {
        "Action": "ec2:*",
        "Effect": "Allow",
        "Resource": "*",
        "Condition": {"Null": {"aws:TokenIssueTime": "true"}},
    }
    context = {"aws:TokenIssueTime": token_issue_time} if token_issue_time else {}
    # When / Then long-term credentials are allowed, temporary ones are not
    req = request("ec2:DescribeImages", context=context, condition_keys=frozenset({"aws:TokenIssueTime"}))
    assert decide(statement, req) == decision


@pytest.mark.parametrize(
    ("tag_keys", "decision"), [(None, "ImplicitDeny"), ((), "ImplicitDeny"), (("Owner",), "Allow")]
)
def test_null_false_requires_the_key_present_with_a_value(tag_keys: tuple[str, ...] | None, decision: str) -> None:
    # Given Null false, which "check[s] if the context key in the request exists and its value is not null"
    statement = {
        "Effect": "Allow",
        "Action": "ec2:CreateTags",
        "Resource": "*",
        "Condition": {"Null": {"aws:TagKeys": False}},
    }
    context = {"aws:TagKeys": tag_keys} if tag_keys is not None else {}
    # When tag keys are missing, empty or present / Then only present ones satisfy it
    assert (
        decide(statement, request("ec2:CreateTags", context=context, condition_keys=frozenset({"aws:TagKeys"})))
        == decision
    )


@pytest.mark.parametrize(
    ("tag_keys", "decision"),
    [
        (("key1:legal",), "Allow"),
        (("key1:hr", "key1:personnel"), "Allow"),
        (("key2:audit",), "ExplicitDeny"),
        (None, "ExplicitDeny"),  # "The ForAllValues set operator also returns true if there are no context keys"
    ],
)
def test_for_all_values_deny_of_restricted_tag_keys(tag_keys: tuple[str, ...] | None, decision: str) -> None:
    # Given "Multivalued context key examples": DenyRestrictedTags with ForAllValues:StringNotLike key1*
    deny = {
        "Sid": "DenyRestrictedTags",
        "Effect": "Deny",
        "Action": ["iam:Tag*", "iam:UnTag*"],
        "Resource": ["*"],
        "Condition": {"ForAllValues:StringNotLike": {"aws:TagKeys": "key1*"}},
    }
    allow = {"Effect": "Allow", "Action": "iam:*", "Resource": "*"}
    context = {"aws:TagKeys": tag_keys} if tag_keys else {}
    req = request("iam:TagRole", f"arn:aws:iam::{ACCOUNT}:role/r", context, frozenset({"aws:TagKeys"}))
    # When the role tags a role / Then the page's table holds
    assert decide([deny, allow], req) == decision


THREAD = "arn:aws:dynamodb:us-east-1:111122223333:table/Thread"
ATTRIBUTES = frozenset({"dynamodb:Attributes"})


@pytest.mark.parametrize(
    ("attributes", "decision"),
    [(("PostDateTime", "Message"), "Allow"), (("PostDateTime", "UserName"), "ImplicitDeny"), ((), "Allow")],
)
def test_for_all_values_allows_only_listed_values(attributes: tuple[str, ...], decision: str) -> None:
    # Given the multi-value conditions page's ForAllValues:StringLike GetItem example (its key, once
    # dynamodb:requestedAttributes, named dynamodb:Attributes here); an empty set is true for ForAllValues
    statement = {
        "Effect": "Allow",
        "Action": "dynamodb:GetItem",
        "Resource": THREAD,
        "Condition": {"ForAllValues:StringLike": {"dynamodb:Attributes": ["PostDateTime", "Message", "Tags"]}},
    }
    req = request("dynamodb:GetItem", THREAD, {"dynamodb:Attributes": attributes}, ATTRIBUTES)
    # When / Then every requested attribute must be listed
    assert decide(statement, req) == decision


@pytest.mark.parametrize(
    ("attributes", "decision"),
    [
        (("UserName", "Message", "PostDateTime"), "ExplicitDeny"),
        (("UserName",), "Allow"),
        ((), "Allow"),
        (None, "Allow"),
    ],
)
def test_for_any_value_denies_when_any_value_matches(attributes: tuple[str, ...] | None, decision: str) -> None:
    # Given the same page's ForAnyValue:StringLike PutItem Deny, with an Allow beside it
    deny = {
        "Effect": "Deny",
        "Action": "dynamodb:PutItem",
        "Resource": THREAD,
        "Condition": {"ForAnyValue:StringLike": {"dynamodb:Attributes": ["ID", "PostDateTime"]}},
    }
    allow = {"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"}
    context = {"dynamodb:Attributes": attributes} if attributes is not None else {}
    # When / Then one forbidden attribute denies; none, an empty set or a missing key does not
    assert decide([deny, allow], request("dynamodb:PutItem", THREAD, context, ATTRIBUTES)) == decision


def test_arn_like_checks_each_of_the_six_parts_separately() -> None:
    # Given the Condition operators page's pattern and request value, where StringLike matches and ArnLike fails
    pattern = f"arn:aws:someservice:*:{ACCOUNT}:finance/*"
    value = f"arn:aws:someservice:us-east-2:999999999999:store/abc:{ACCOUNT}:finance/document.txt"

    def with_operator(operator: str) -> str:
        statement = {
            "Effect": "Allow",
            "Action": "sqs:SendMessage",
            "Resource": "*",
            "Condition": {operator: {"aws:SourceArn": pattern}},
        }
        return decide(statement, request("sqs:SendMessage", context={"aws:SourceArn": (value,)}))

    # When / Then
    assert with_operator("StringLike") == "Allow"
    assert with_operator("ArnLike") == "ImplicitDeny"
    assert with_operator("ArnNotLike") == "Allow"


@pytest.mark.parametrize(("max_keys", "decision"), [("10", "Allow"), ("9", "Allow"), ("11", "ImplicitDeny")])
def test_numeric_less_than_equals(max_keys: str, decision: str) -> None:
    # Given the Condition operators page's s3:max-keys example (the value given here as a JSON number)
    statement = {
        "Effect": "Allow",
        "Action": "s3:ListBucket",
        "Resource": "arn:aws:s3:::example_bucket",
        "Condition": {"NumericLessThanEquals": {"s3:max-keys": 10}},
    }
    req = request("s3:ListBucket", "arn:aws:s3:::example_bucket", {"s3:max-keys": (max_keys,)})
    # When / Then up to 10 keys are allowed
    assert decide(statement, req) == decision


@pytest.mark.parametrize(("secure", "decision"), [("false", "ExplicitDeny"), ("true", "Allow")])
def test_bool_denies_requests_not_over_tls(secure: str, decision: str) -> None:
    # Given the Condition operators page's BooleanExample (value as a JSON boolean), plus an Allow
    deny = {
        "Sid": "BooleanExample",
        "Action": "s3:*",
        "Effect": "Deny",
        "Resource": ["arn:aws:s3:::DOC-EXAMPLE-BUCKET", "arn:aws:s3:::DOC-EXAMPLE-BUCKET/*"],
        "Condition": {"Bool": {"aws:SecureTransport": False}},
    }
    allow = {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}
    req = request("s3:GetObject", "arn:aws:s3:::DOC-EXAMPLE-BUCKET/a", {"aws:SecureTransport": (secure,)})
    # When / Then plain HTTP is denied
    assert decide([deny, allow], req) == decision


def test_operators_and_keys_are_anded() -> None:
    # Given two operators, one with two keys ("Conditions with multiple context keys or values": AND)
    statement = {
        "Effect": "Allow",
        "Action": "ec2:DeregisterImage",
        "Resource": "*",
        "Condition": {
            "StringEquals": {APP_TAG: "web", "aws:ResourceTag/stage": "retired"},
            "Bool": {"aws:SecureTransport": "true"},
        },
    }
    full = {APP_TAG: ("web",), "aws:ResourceTag/stage": ("retired",), "aws:SecureTransport": ("true",)}
    # When every key holds, or one does not / Then only the first is allowed
    assert decide(statement, request("ec2:DeregisterImage", IMAGE, full, TAG_KEYS)) == "Allow"
    one_off = {**full, "aws:ResourceTag/stage": ("live",)}
    assert decide(statement, request("ec2:DeregisterImage", IMAGE, one_off, TAG_KEYS)) == "ImplicitDeny"


# --- Refusals ---------------------------------------------------------------------------------------


def test_unknown_condition_key_raises_naming_key_action_and_statement() -> None:
    # Given a statement conditioned on a key the request neither carries nor lists
    statement = {"Sid": "ByOwner", **deregister_if_tagged("StringEquals", "web")}
    # When / Then the evaluator refuses rather than treat the key as absent
    with pytest.raises(UnknownConditionKeyError, match=r"ByOwner.*immutable-ami:application.*ec2:DeregisterImage"):
        decide(statement, request("ec2:DeregisterImage", IMAGE))


def test_key_under_a_listed_prefix_pattern_is_known() -> None:
    # Given condition_keys "aws:ResourceTag/*" (case-insensitive prefix) and an untagged image
    req = request("ec2:DeregisterImage", IMAGE, {}, frozenset({"AWS:RESOURCETAG/*"}))
    # When / Then the key is known and absent: the condition is false, no error
    assert decide(deregister_if_tagged("StringEquals", "web"), req) == "ImplicitDeny"


def test_conditions_of_statements_that_do_not_apply_are_not_checked_for_keys() -> None:
    # Given a statement for another action, conditioned on an unknown key
    statement = {"Effect": "Deny", "Action": "s3:*", "Resource": "*", "Condition": {"StringEquals": {"s3:prefix": "x"}}}
    # When / Then it cannot apply, so its keys do not matter
    assert decide(statement, request("ec2:DescribeImages")) == "ImplicitDeny"


def test_plain_operator_on_a_multivalued_key_raises() -> None:
    # Given StringEquals on aws:TagKeys with two values ("Multivalued context keys require a condition set operator")
    statement = {
        "Effect": "Allow",
        "Action": "ec2:CreateTags",
        "Resource": "*",
        "Condition": {"StringEquals": {"aws:TagKeys": "a"}},
    }
    # When / Then
    with pytest.raises(UnsupportedPolicyError, match="several values"):
        decide(statement, request("ec2:CreateTags", context={"aws:TagKeys": ("a", "b")}))


@pytest.mark.parametrize(
    "operator",
    [
        "DateGreaterThan",
        "IpAddress",
        "NotIpAddress",
        "BinaryEquals",
        "NullIfExists",
        "ForAnyValue:Null",
        "ForAnyValue:StringEqualsIfExists",
        "ForSomeValues:StringEquals",
        "stringequals",
    ],
)
def test_unsupported_operator_raises(operator: str) -> None:
    # Given an operator the evaluator does not implement (e.g. the page's DateGreaterThan aws:TokenIssueTime)
    statement = {
        "Effect": "Allow",
        "Action": "iam:*",
        "Resource": "*",
        "Condition": {operator: {"aws:TokenIssueTime": "true"}},
    }
    # When / Then it fails loudly, even for a request the statement would not reach
    with pytest.raises(UnsupportedPolicyError):
        decide(statement, request("ec2:DescribeImages"))


@pytest.mark.parametrize(
    "statement",
    [
        {"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::bucket/home/${aws:username}/*"},
        {
            "Effect": "Allow",
            "Action": "s3:*",
            "Resource": "*",
            "Condition": {"StringLike": {"s3:prefix": "home/${aws:username}/"}},
        },
    ],
)
def test_policy_variable_raises(statement: dict[str, Any]) -> None:
    # Given a policy variable from the Condition operators page's home-directory example
    # When / Then the evaluator does not substitute it, and refuses
    with pytest.raises(UnsupportedPolicyError, match="policy variables"):
        decide(statement, request("s3:ListBucket", "arn:aws:s3:::bucket", {"s3:prefix": ("home/",)}))


@pytest.mark.parametrize(
    "statement",
    [
        {"Effect": "Allow", "Action": "s3:*", "Resource": {"Fn::Join": ["", ["arn:aws:s3:::", {"Ref": "Bucket"}]]}},
        {
            "Effect": "Allow",
            "Action": "s3:*",
            "Resource": "*",
            "Condition": {"StringEquals": {"s3:prefix": {"Ref": "P"}}},
        },
        {"Effect": "Allow", "Action": "s3:*", "Resource": "*", "Principal": {"AWS": ACCOUNT}},
        {"Effect": "allow", "Action": "s3:*", "Resource": "*"},  # "The Effect value is case sensitive."
        {"Effect": "Allow", "Action": "s3:*"},  # neither Resource nor NotResource
        {"Effect": "Allow", "Action": "s3:*", "Resource": "*", "Condition": {"ArnLike": {"aws:SourceArn": "*"}}},
    ],
)
def test_malformed_or_unresolved_statement_raises(statement: dict[str, Any]) -> None:
    # Given an unresolved CloudFormation intrinsic, a Principal, a lowercase Effect, no Resource, or a
    # non-ARN ArnLike pattern
    # When / Then the evaluator refuses the policy
    with pytest.raises(UnsupportedPolicyError):
        decide(statement, request("s3:ListBucket", "arn:aws:s3:::bucket", {"s3:prefix": ("a",)}))


# --- ec2:IsLaunchTemplateResource -----------------------------------------------------------------------
# EC2 User Guide, "Example policies to control access the Amazon EC2 API", Launch templates
# (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/ExamplePolicies_EC2.html#iam-example-runinstances-launch-templates):
# ec2:LaunchTemplate alone lets users "override any parameters in the launch template"; with
# ec2:IsLaunchTemplateResource = true they cannot override "any pre-existing ARNs in the launch template".
# The requests come from rehearsal.iam.requests (a RunInstances from the template, with or without the caller's
# own AMI), the policy is the stack's launch statements as written for the template.
LT_REGION, LT_ACCOUNT, LT_ID = "eu-west-1", "123456789012", "lt-0aaaaaaaaaaaaaaa1"
LT_ARN = f"arn:aws:ec2:{LT_REGION}:{LT_ACCOUNT}:launch-template/{LT_ID}"
TEMPLATE_AMI, OTHER_AMI = "ami-0123456789abcdef0", "ami-0fffffffffffffff0"


def launch_statements(pin_image: bool) -> list[dict[str, Any]]:
    """stacks.step_grants.launch_with_templates' statements for one template (IsLaunchTemplateResource on the image and
    key pair when `pin_image`)."""
    ec2 = f"arn:aws:ec2:{LT_REGION}"
    from_template = {"ArnLike": {"ec2:LaunchTemplate": [LT_ARN]}}
    created = ["instance", "volume", "network-interface", "subnet", "security-group"]
    own = [f"{ec2}::image/*", f"{ec2}:{LT_ACCOUNT}:key-pair/*"]
    return [
        {
            "Sid": "LaunchOnlyFromConfiguredTemplates",
            "Effect": "Allow",
            "Action": "ec2:RunInstances",
            "Resource": [f"{ec2}:{LT_ACCOUNT}:{kind}/*" for kind in created] + ([] if pin_image else own),
            "Condition": from_template,
        },
        *(
            [
                {
                    "Sid": "OnlyTheTemplatesOwnImageAndKeyPair",
                    "Effect": "Allow",
                    "Action": "ec2:RunInstances",
                    "Resource": own,
                    "Condition": {**from_template, "Bool": {"ec2:IsLaunchTemplateResource": "true"}},
                }
            ]
            if pin_image
            else []
        ),
        {"Sid": "UseConfiguredTemplates", "Effect": "Allow", "Action": "ec2:RunInstances", "Resource": LT_ARN},
    ]


def launch_requests(**overrides: Any) -> list[AuthorizationRequest]:
    from rehearsal.iam.requests import ImageFacts, TemplateFacts, VersionFacts, Where, requests_for
    from tests.rehearsal.test_iam_requests import FakeLookup

    version = VersionFacts(image_id=TEMPLATE_AMI, subnet_ids=("subnet-0a",), security_group_ids=("sg-0web",))
    lookup = FakeLookup(
        images={ami: ImageFacts(tags={}, snapshot_ids=(), owner=LT_ACCOUNT) for ami in (TEMPLATE_AMI, OTHER_AMI)},
        templates={LT_ID: TemplateFacts(LT_ID, {}, 1, {1: version})},
    )
    params = {"LaunchTemplate": {"LaunchTemplateId": LT_ID, "Version": "1"}, "MinCount": 1, "MaxCount": 1}
    return requests_for("ec2", "RunInstances", params | overrides, Where("aws", LT_REGION, LT_ACCOUNT), lookup)


def denied(statements: list[dict[str, Any]], requests: list[AuthorizationRequest]) -> list[str]:
    return [r.resource for r in requests if decide(statements, r) != "Allow"]


def test_is_launch_template_resource_grants_a_launch_from_the_templates_own_values() -> None:
    # Given the launch statements with the image pinned / When the role launches from the template as it is
    requests = launch_requests()
    # Then every resource is allowed, the image on the pinning statement
    assert denied(launch_statements(pin_image=True), requests) == []
    (image,) = [r for r in requests if ":image/" in r.resource]
    assert image.context["ec2:IsLaunchTemplateResource"] == ("true",)
    assert evaluate({"p": policy(*launch_statements(True))}, image).matched == ("OnlyTheTemplatesOwnImageAndKeyPair",)


def test_is_launch_template_resource_refuses_an_override_of_the_ami() -> None:
    # Given the same template / When the role launches from it with an AMI of its own
    requests = launch_requests(ImageId=OTHER_AMI)
    # Then the pinned statements deny that image, while ec2:LaunchTemplate alone would have allowed it
    assert denied(launch_statements(pin_image=True), requests) == [f"arn:aws:ec2:{LT_REGION}::image/{OTHER_AMI}"]
    assert denied(launch_statements(pin_image=False), requests) == []


def test_is_launch_template_resource_refuses_a_key_pair_the_template_does_not_name() -> None:
    # Given the same template (no key pair) / When the role adds one of its own / Then that key pair is denied
    requests = launch_requests(KeyName="mine")
    assert denied(launch_statements(pin_image=True), requests) == [
        f"arn:aws:ec2:{LT_REGION}:{LT_ACCOUNT}:key-pair/mine"
    ]


def test_is_launch_template_resource_on_what_the_launch_creates_is_not_guessed() -> None:
    # Given a policy requiring the key on the instance (the docs leave its value on created resources open)
    statement = {
        "Effect": "Allow",
        "Action": "ec2:RunInstances",
        "Resource": f"arn:aws:ec2:{LT_REGION}:{LT_ACCOUNT}:instance/*",
        "Condition": {"Bool": {"ec2:IsLaunchTemplateResource": "true"}},
    }
    (instance,) = [r for r in launch_requests() if r.resource.endswith(":instance/*")]
    # When the launch is evaluated / Then the evaluator refuses to decide
    with pytest.raises(UnknownConditionKeyError, match="ec2:IsLaunchTemplateResource"):
        decide(statement, instance)


def test_is_launch_template_resource_is_false_on_what_an_auto_scaling_group_supplies() -> None:
    # Given a group whose template names its AMI but no subnet and no security group
    from rehearsal.iam.requests import VersionFacts, requests_for
    from tests.rehearsal.test_iam_requests import GROUP, TEMPLATE, WHERE, account

    lookup = account(VersionFacts(image_id="ami-0123456789abcdef0"))
    params = {"AutoScalingGroupName": GROUP, "LaunchTemplate": {"LaunchTemplateId": TEMPLATE, "Version": "2"}}
    # When Auto Scaling checks that the caller may launch from it
    launch = [
        r
        for r in requests_for("autoscaling", "UpdateAutoScalingGroup", params, WHERE, lookup)
        if r.action == "ec2:RunInstances"
    ]
    values = {r.resource.rsplit(":", 1)[1]: r.context.get("ec2:IsLaunchTemplateResource") for r in launch}
    # Then the template's AMI is its own, the group's subnets and the VPC's default group are not
    assert values["image/ami-0123456789abcdef0"] == ("true",)
    assert values["subnet/subnet-0a"] == values["subnet/subnet-0b"] == ("false",)
    assert values["security-group/sg-0default"] == ("false",)
