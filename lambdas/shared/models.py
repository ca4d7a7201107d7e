"""The base models of the steps' inputs and outputs, so each step's models declare only their own fields.

- `StepModel`: the JSON the state machine passes and reads back is camelCase (`executionId`, `dryRun`), each
  field's alias; the Python names are accepted too; a parsed model is never changed (frozen).
- `Payload`: a part of a task payload a step parses: no field it does not know, JSON types only (strict).
- `StepInput`: a task payload: the Step Functions execution id (every log line's correlation id, the seed of every
  client token) and whether the execution is a dry run.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

# $$.Execution.Id: an execution ARN (at most 256 characters by botocore's stepfunctions model; 2048 leaves room).
ExecutionId = Annotated[str, Field(min_length=1, max_length=2048)]


class StepModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


class Payload(StepModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class StepInput(Payload):
    execution_id: ExecutionId
    dry_run: bool = False
