"""CodeCommit's GetCommit, which moto lacks (moto 5.2.5 emulates CreateRepository, GetRepository and
DeleteRepository only), answered from the world's repository.

The world's repository is the configured source's. It holds the commits the world's app images were baked from
(rehearsal.world.COMMITS) and the commits the scenario pushed before the execution starts: `codecommit.pushed`,
by default the input's commit (a push is what starts a deploy). `"codecommit": {"pushed": []}` names a commit
nobody pushed.

GetCommit, as the AWS CodeCommit API Reference documents it
(https://docs.aws.amazon.com/codecommit/latest/APIReference/API_GetCommit.html): "Commit IDs are the full SHA
ID of the commit"; a commit the repository lacks answers CommitIdDoesNotExistException (HTTP 400), one that is
not a commit ID at all InvalidCommitIdException (HTTP 400). The docs do not say which of the two a short or
malformed ID answers: here, anything that is not 40 hexadecimal characters is InvalidCommitIdException. The
response's `commit` is a Commit object ("Commit" data type, same reference): commitId, treeId, parents, message,
author, committer; the tree and the dates here are made up.

Which repository: the call's. validate_request's role allows codecommit:GetCommit on the configured repository's
ARN only, so the IAM contract (rehearsal/contract.py) denies a call on any other before it gets here.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from rehearsal.emulation import EmulationState, _error, _ok

_FULL_SHA = re.compile(r"[0-9a-fA-F]{40}")


class CodeCommitEmulation(EmulationState):
    def _repository_commits(self) -> set[str]:
        from rehearsal.world import COMMITS  # the world's history (world.py imports the emulation: imported late)

        codecommit = self.scenario.get("codecommit", {})
        commit = self.scenario.get("input", {}).get("commit")
        pushed = codecommit.get("pushed", [commit] if isinstance(commit, str) else [])
        return {*COMMITS, *pushed}

    def _get_commit(self, params: dict[str, Any]) -> Any:
        repository, commit_id = str(params["repositoryName"]), str(params["commitId"])
        if not _FULL_SHA.fullmatch(commit_id):
            return _error("InvalidCommitIdException", f"The specified commit ID is not valid: {commit_id}")
        if commit_id not in self._repository_commits():
            self.log(f"CodeCommit {repository}: no commit {commit_id}")
            return _error("CommitIdDoesNotExistException", f"The specified commit ID does not exist: {commit_id}")
        person = {"name": "Rehearsal", "email": "rehearsal@example.com", "date": "1700000000 +0000"}
        return _ok(
            {
                "commit": {
                    "commitId": commit_id,
                    "treeId": hashlib.sha1(f"tree {commit_id}".encode(), usedforsecurity=False).hexdigest(),
                    "parents": [],
                    "message": f"emulated commit {commit_id[:12]}",
                    "author": person,
                    "committer": person,
                    "additionalData": "",
                }
            }
        )
