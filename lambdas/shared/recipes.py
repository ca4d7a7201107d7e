"""How per-bake app recipes are named: `<app>-app-<digest>`, the digest exactly this many hex characters.

start_image_build names them; the stack scopes IAM to exactly that shape (`?` matches one character in an
IAM ARN pattern, IAM User Guide, "IAM JSON policy elements: Resource"), so application `web` cannot reach
the recipes or images of an application named `web-app` (`web-app-base`, `web-app-app-…`).
"""

RECIPE_DIGEST_LENGTH = 12


def app_recipe_name_pattern(recipe_prefix: str) -> str:
    """The IAM pattern of every per-bake recipe name with this prefix (`<app>-app`)."""
    return f"{recipe_prefix}-{'?' * RECIPE_DIGEST_LENGTH}"
