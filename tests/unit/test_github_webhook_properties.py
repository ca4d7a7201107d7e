"""github_webhook over arbitrary deliveries (hypothesis): every one is answered, none crashes, only a signed push runs.

The function URL is public (auth NONE), so anyone can send it anything: bodies of any text (lone surrogates
included) or bytes, base64-flagged or not, nested or huge JSON, headers in any casing, missing, duplicated or not
strings. Whatever arrives, the answer is one of 200, 202, 400, 401, 413 (a 4xx naming its reason), nothing is
written to stderr (no traceback, no logging error), and an execution starts only for a delivery signed with the
webhook secret whose input validate_request accepts.

Deterministic and fast: a fixed profile (derandomized, bounded examples, no deadline, no example database).
The handler runs with the fakes of tests/unit/test_github_webhook.py's logic tests (a fixed secret, a recording
StartExecution) instead of moto, so ~200 invocations take a few seconds.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import importlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from validate_request.logic import check_request, parse_request

import shared.observability
from tests.conftest import FakeLambdaContext
from tests.unit.fakes import RecordingStarter
from tests.unit.test_github_webhook import (
    BRANCH,
    COMMIT,
    ENV_FOR_LOGIC,
    GITHUB_CONFIG,
    REPOSITORY,
    SECRET,
    delivery,
    push_payload,
    sign,
)

PROFILE = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
ANSWERS = {200, 202, 400, 401, 413}
SIGNATURE = "x-hub-signature-256"


class FixedSecret:
    """The webhook secret, never rotated (SecretSource)."""

    def get(self) -> str:
        return SECRET

    def refresh(self) -> str | None:
        return None


@dataclass
class Webhook:
    handler: ModuleType
    starter: RecordingStarter


@pytest.fixture(scope="module")
def webhook() -> Iterator[Webhook]:
    """The real handler module, its secret and StartExecution replaced by the fakes (module-scoped for hypothesis)."""
    starter = RecordingStarter()
    with pytest.MonkeyPatch.context() as patch:
        for key, value in ENV_FOR_LOGIC.model_dump(by_alias=True).items():
            patch.setenv(key, value)
        handler = importlib.import_module("github_webhook.handler")
        patch.setattr(handler, "ENV", ENV_FOR_LOGIC)
        patch.setattr(handler, "webhook_secret", FixedSecret)
        patch.setattr(handler, "stepfunctions", lambda: starter)
        yield Webhook(handler, starter)


# --- bodies ----------------------------------------------------------------------------------------

# Any text, lone surrogates included (st.text() leaves them out by default): a function URL event is JSON, whose
# "\ud800" escapes decode to lone surrogates. Some strings known to be awkward are drawn more often than chance would.
AWKWARD_TEXT = ["\ud800", "push\udfff", "\x00", "push\n", " push", "\u2028", "\ufeffpush", "é", "🚀"]
ANY_TEXT = st.one_of(
    st.sampled_from(AWKWARD_TEXT),
    st.text(
        alphabet=st.one_of(st.characters(codec=None, exclude_categories=()), st.characters(categories=["Cs"])),
        max_size=40,
    ),
)
HEX_40 = st.text(alphabet="0123456789abcdefABCDEF", min_size=40, max_size=40)


def sometimes(draw: st.DrawFn, one_in: int = 4) -> bool:
    """True about once in `one_in` draws: most generated deliveries stay close enough to GitHub's to get far."""
    return draw(st.sampled_from(range(one_in))) == one_in - 1


@st.composite
def push_payloads(draw: st.DrawFn) -> dict[str, Any]:
    """Push payloads around the deploying one: each field GitHub's, another plausible value, or any text."""
    change: dict[str, Any] = {}
    if sometimes(draw):
        change["ref"] = draw(
            st.one_of(st.sampled_from([f"refs/heads/{BRANCH}", "refs/heads/other", "refs/tags/v1", "main"]), ANY_TEXT)
        )
    if sometimes(draw):
        change["after"] = draw(st.one_of(st.sampled_from([COMMIT, "0" * 40, COMMIT[:7], COMMIT + "\n"]), HEX_40))
    if sometimes(draw):
        change["repository"] = {"full_name": draw(st.one_of(st.sampled_from([REPOSITORY, "Acme/Web-App"]), ANY_TEXT))}
    if sometimes(draw):
        change["pusher"] = {"name": draw(ANY_TEXT)}
    if sometimes(draw):
        change["deleted"] = draw(st.sampled_from([True, False, "false", None]))
    if sometimes(draw, 8):  # a value json.loads cannot turn into an int (over Python's 4300 digits)
        change[draw(st.sampled_from(["after", "forced", "size"]))] = int("9" * draw(st.sampled_from([10, 4300])))
    payload = push_payload(**change)
    if sometimes(draw, 8):
        del payload[draw(st.sampled_from(sorted(payload)))]
    return payload


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def huge_integer(digits: int) -> bytes:
    return b'{"after": ' + b"9" * digits + b"}"


ODD_BODIES = st.one_of(
    st.sampled_from([1, 100, 999, 1000, 5000, 100_000]).map(nested),
    st.sampled_from([4300, 4301, 5000, 50_000]).map(huge_integer),
    st.binary(max_size=64),
    st.just(b"x" * (1024 * 1024 + 1)),
)


@st.composite
def raw_bodies(draw: st.DrawFn) -> bytes:
    """A push payload as JSON or form-encoded, or (one time in three) bytes no push payload looks like."""
    if sometimes(draw, 3):
        return draw(ODD_BODIES)
    payload = json.dumps(draw(push_payloads()))
    return urlencode({"payload": payload}).encode() if sometimes(draw, 5) else payload.encode()


@dataclass(frozen=True)
class Body:
    """The event's body and isBase64Encoded as sent, and the bytes a sender would have signed."""

    text: Any  # a str as function URLs send it, or anything else an odd invocation may hold
    flag: Any  # isBase64Encoded: a bool, or anything else
    signed_bytes: bytes


@st.composite
def bodies(draw: st.DrawFn) -> Body:
    if sometimes(draw, 10):  # the body as text, lone surrogates included, never base64
        text = draw(ANY_TEXT)
        return Body(text, draw(st.sampled_from([False, True])), text.encode("utf-8", "surrogatepass"))
    raw = draw(raw_bodies())
    encoding = draw(st.sampled_from(["plain"] * 4 + ["base64"] * 4 + ["flag-without-encoding", "odd"]))
    if encoding == "odd":  # what a function URL never sends: a body or flag of another JSON type, or none
        return Body(
            draw(st.sampled_from([None, 42, {"a": 1}, ["x"], raw.decode("latin-1")])),
            draw(st.sampled_from([None, "true", 1, 0, False])),
            raw,
        )
    if encoding == "plain":
        try:
            return Body(raw.decode("utf-8"), False, raw)
        except UnicodeDecodeError:  # bytes that are not UTF-8 travel base64-encoded
            encoding = "base64"
    if encoding == "base64":
        return Body(base64.b64encode(raw).decode(), True, raw)
    return Body(raw.decode("latin-1"), True, raw)


# --- headers ---------------------------------------------------------------------------------------

ODD_VALUES = st.sampled_from([None, 42, ["push"], {"a": "b"}, True])
EVENTS = st.one_of(st.sampled_from(["ping", "issues", "PUSH", " push", ""]), ANY_TEXT)


def recased(name: str, style: str) -> str:
    return {"lower": name.lower(), "upper": name.upper(), "title": name.title()}[style]


@st.composite
def headers(draw: st.DrawFn, body: Body) -> Any:
    """A delivery's headers, each kept, dropped or changed, in any casing, possibly duplicated or not a string."""
    good = sign(body.signed_bytes)
    signatures = st.sampled_from(
        [
            good.upper().replace("SHA256=", "sha256="),
            f"  {good} ",
            f"{good},{good}",
            sign(body.signed_bytes, "another-secret"),
            "sha256=" + "0" * 64,
            "sha1=" + "0" * 40,
            good[:-1],
            "",
        ]
    )
    values: dict[str, Any] = {
        SIGNATURE: draw(st.one_of(signatures, ANY_TEXT)) if sometimes(draw, 3) else good,
        "x-github-event": draw(EVENTS) if sometimes(draw) else "push",
        "x-github-delivery": draw(st.one_of(ANY_TEXT, st.text("abc-", max_size=300)))
        if sometimes(draw)
        else "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        "content-type": draw(st.sampled_from(["application/json", "application/x-www-form-urlencoded", "text/plain"]))
        if sometimes(draw)
        else "application/json",
        "user-agent": "GitHub-Hookshot/044aadd",
    }
    result: dict[Any, Any] = {}
    for name, value in values.items():
        fate = draw(st.sampled_from(["keep"] * 20 + ["drop", "odd-value", "duplicate"]))
        if fate == "drop":
            continue
        spelled = recased(name, draw(st.sampled_from(["lower", "lower", "upper", "title"])))
        result[spelled] = draw(ODD_VALUES) if fate == "odd-value" else value
        if fate == "duplicate":  # the same header again, in another casing, with another (or the same) value
            result[recased(name, "upper" if spelled != name.upper() else "title")] = draw(
                st.one_of(st.just(value), ANY_TEXT)
            )
    if sometimes(draw, 40):
        return draw(st.sampled_from([None, [], "x-github-event: push", {1: "push"}]))
    return result


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    body = draw(bodies())
    event = delivery(body=b"")
    event["headers"] = draw(headers(body))
    event["body"] = body.text
    event["isBase64Encoded"] = body.flag
    if sometimes(draw, 20):
        del event[draw(st.sampled_from(["body", "isBase64Encoded", "headers"]))]
    return event


# --- the oracle ------------------------------------------------------------------------------------


def received_bytes(event: dict[str, Any]) -> bytes | None:
    """The bytes the webhook must have verified: the body, base64-decoded when flagged; None if it has none."""
    text, flag = event.get("body"), event.get("isBase64Encoded", False)
    if not isinstance(text, str):
        return None
    if flag is True:
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            return None
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return None


def signed_with_the_secret(event: dict[str, Any]) -> bool:
    """The one X-Hub-Signature-256 header (any casing) is the HMAC of the received bytes with the webhook secret."""
    raw = received_bytes(event)
    found = event.get("headers")
    if raw is None or not isinstance(found, dict):
        return False
    values = [v for k, v in found.items() if isinstance(k, str) and k.lower() == SIGNATURE]
    return len(values) == 1 and isinstance(values[0], str) and values[0].lower() == sign(raw)


def event_header(event: dict[str, Any]) -> list[Any]:
    found = event.get("headers")
    if not isinstance(found, dict):
        return []
    return [v for k, v in found.items() if isinstance(k, str) and k.lower() == "x-github-event"]


def invoke(webhook: Webhook, event: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The handler's response, and what was written to stderr (logging errors and tracebacks go there).

    The logger writes to a strict UTF-8 stream, as a process's stdout is: a line it cannot encode (a lone
    surrogate) is a logging error. The Lambda docs do not say how the Python runtime encodes stdout; strict UTF-8
    is the safer reading.
    """
    stdout = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict")
    stderr = io.StringIO()
    log_handler = shared.observability.logger.registered_handler
    previous = log_handler.setStream(stdout)  # type: ignore[attr-defined]
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            response = webhook.handler.lambda_handler(event, FakeLambdaContext())
            stdout.flush()
    finally:
        log_handler.setStream(previous)  # type: ignore[attr-defined]
    return response, stderr.getvalue()


@PROFILE
@given(event=events())
def test_every_delivery_is_answered_with_a_known_status_and_only_a_signed_valid_push_starts(
    webhook: Webhook, event: dict[str, Any]
) -> None:
    webhook.starter.started.clear()
    # When any delivery reaches the function URL
    response, stderr = invoke(webhook, event)
    # Then it is answered with a JSON body and one of the statuses the README documents, never a 5xx
    status, body = response["statusCode"], json.loads(response["body"])
    assert status in ANSWERS
    assert stderr == ""
    if status >= 400:
        assert isinstance(body["error"], str)
        assert body["error"]
    # And an execution starts only for a delivery signed with the secret, of a push, that validate_request accepts
    started = webhook.starter.started
    assert len(started) == (1 if status == 202 else 0)
    if started:
        raw = received_bytes(event)
        assert raw is not None
        assert signed_with_the_secret(event)
        assert event_header(event) == ["push"]
        request = parse_request(json.loads(started[0]))
        check_request(request, GITHUB_CONFIG)
        assert request.commit is not None
        assert request.commit.encode() in raw.lower()


@pytest.mark.parametrize("encode", [False, True], ids=["plain", "base64"])
def test_delivery_the_strategies_start_from_deploys(webhook: Webhook, encode: bool) -> None:
    # Given the unchanged delivery every generated one derives from (so the property reaches the start)
    raw = json.dumps(push_payload()).encode()
    event = delivery(body=raw, encode=encode)
    webhook.starter.started.clear()
    # When it is delivered / Then it starts one execution and writes nothing to stderr
    response, stderr = invoke(webhook, event)
    assert (response["statusCode"], stderr) == (202, "")
    assert len(webhook.starter.started) == 1
