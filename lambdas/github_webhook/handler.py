"""The github_webhook step. Its logic arrives with issue #5; until then it fails loudly (NotImplementedYet)."""

from shared.not_implemented import not_implemented_handler

lambda_handler = not_implemented_handler("github_webhook", issue=5)
