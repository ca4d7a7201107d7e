"""The check_image_build step. Its logic arrives with issue #4; until then it fails loudly (NotImplementedYet)."""

from shared.not_implemented import not_implemented_handler

lambda_handler = not_implemented_handler("check_image_build", issue=4)
