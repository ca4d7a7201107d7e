"""CodeCommit: does a commit exist in a repository (GetCommit). A read; what to make of the answer is the caller's.

GetCommit takes the full commit ID only: "Commit IDs are the full SHA ID of the commit" (AWS CodeCommit API
Reference, GetCommit: https://docs.aws.amazon.com/codecommit/latest/APIReference/API_GetCommit.html), and
BatchGetCommits says it outright: "You cannot use shortened SHA IDs"
(https://docs.aws.amazon.com/codecommit/latest/APIReference/API_BatchGetCommits.html). CodeCommit cannot resolve
a short SHA, so callers pass 40 hexadecimal characters and refuse anything else before calling.

Errors (GetCommit, "Errors", and botocore's codecommit model, whose GetCommit error shapes are the same list):
- CommitIdDoesNotExistException, InvalidCommitIdException, CommitIdRequiredException: no such commit;
- RepositoryDoesNotExistException, InvalidRepositoryNameException, RepositoryNameRequiredException: no such
  repository;
- a throttle raises `Throttled` (shared.aws.throttling, through `adapter_client`);
- an HTTP 5xx (InternalFailure, ServiceUnavailable, EncryptionIntegrityChecksFailedException) is transient:
  botocore's standard retry mode already retried it ("transient errors": status 500, 502, 503, 504;
  `TransientRetryableChecker` in botocore/retries/standard.py, boto3 Retries guide:
  https://docs.aws.amazon.com/boto3/latest/guide/retries.html). Once those retries are spent it raises `Throttled`,
  the error name the state machine's Retry backs off on, so the step is tried again later instead of failing;
- anything else (AccessDenied, the Encryption* 4xx codes of a repository key the caller cannot use) is raised
  as botocore's ClientError: a configuration problem no retry fixes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from botocore.exceptions import ClientError

from shared.aws.clients import adapter_client
from shared.errors import Throttled

_NO_COMMIT_CODES = frozenset({"CommitIdDoesNotExistException", "InvalidCommitIdException", "CommitIdRequiredException"})
_NO_REPOSITORY_CODES = frozenset(
    {"RepositoryDoesNotExistException", "InvalidRepositoryNameException", "RepositoryNameRequiredException"}
)
_SERVER_ERROR = 500


@dataclass(frozen=True)
class CommitLookup:
    """GetCommit's answer for one commit of one repository."""

    repository: str
    commit_id: str
    status: Literal["found", "no-such-commit", "no-such-repository"]
    code: str = ""  # the AWS error code when not found
    message: str = ""
    tree_id: str = ""
    parents: tuple[str, ...] = ()


class CodeCommit:
    """GetCommit on one repository's commits."""

    def __init__(self, codecommit: Any = None) -> None:
        self._codecommit = adapter_client(codecommit, "codecommit")

    def get_commit(self, repository: str, commit_id: str) -> CommitLookup:
        """Whether `commit_id` (a full SHA) is a commit of `repository`."""
        try:
            response = self._codecommit.get_commit(repositoryName=repository, commitId=commit_id)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code, message = str(error.get("Code", "")), str(error.get("Message", ""))
            if code in _NO_COMMIT_CODES:
                return CommitLookup(repository, commit_id, "no-such-commit", code, message)
            if code in _NO_REPOSITORY_CODES:
                return CommitLookup(repository, commit_id, "no-such-repository", code, message)
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            if status >= _SERVER_ERROR:
                retries = int(exc.response.get("ResponseMetadata", {}).get("RetryAttempts", 0) or 0)
                raise Throttled(
                    f"codecommit GetCommit failed on AWS's side: HTTP {status} {code}: {message} "
                    f"(after {retries + 1} attempt{'s' if retries else ''}); the step is retried later"
                ) from exc
            raise
        commit = response.get("commit", {})
        return CommitLookup(
            repository,
            commit_id,
            "found",
            tree_id=str(commit.get("treeId", "")),
            parents=tuple(str(p) for p in commit.get("parents", [])),
        )
