"""Function environment variables (besides DEPLOY_CONFIG), validated once at cold start.

Each handler declares a small pydantic model whose field aliases are the variable names the stack sets;
`load_environment` fails with a `ConfigurationError` naming every missing or malformed variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from shared.config import ConfigurationError
from shared.parsing import describe_validation_error

EnvT = TypeVar("EnvT", bound=BaseModel)


def load_environment(model: type[EnvT], function: str, environ: Mapping[str, str] | None = None) -> EnvT:
    try:
        return model.model_validate(dict(os.environ if environ is None else environ))
    except ValidationError as exc:
        raise ConfigurationError(f"{function} function environment: {describe_validation_error(exc)}") from exc
