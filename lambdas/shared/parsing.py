"""Turn a task payload into its typed model, or fail with a precise `InvalidInput`."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from shared.errors import InvalidInput

ModelT = TypeVar("ModelT", bound=BaseModel)


def describe_validation_error(exc: ValidationError, prefix: str = "") -> str:
    """One line per problem: `stages[1].name: Input should be ...`, with the offending value."""
    lines = []
    for err in exc.errors(include_url=False):
        path = prefix
        for part in err["loc"]:
            if isinstance(part, int):
                path += f"[{part}]"
            else:
                path += f".{part}" if path else str(part)
        where = path or "input"
        if err["type"] == "extra_forbidden":
            lines.append(f"{where}: unknown field")
        elif err["type"] == "missing":
            lines.append(f"{where}: required field is missing")
        else:
            lines.append(f"{where}: {err['msg']}, got {err.get('input')!r}")
    return "; ".join(lines)


def parse_step_input(event: Any, model: type[ModelT], prefix: str = "") -> ModelT:
    """Validate `event` against `model`; raise `InvalidInput` naming every bad field."""
    try:
        return model.model_validate(event)
    except ValidationError as exc:
        raise InvalidInput(describe_validation_error(exc, prefix)) from exc
