"""SSM Parameter Store: write one String parameter (the build source the app image component reads)."""

from __future__ import annotations

from typing import Any

from shared.aws.clients import adapter_client


class Parameters:
    def __init__(self, ssm: Any = None) -> None:
        self._ssm = adapter_client(ssm, "ssm")

    def put_string(self, name: str, value: str) -> int:
        """Create or overwrite the String parameter; returns the new parameter version."""
        response = self._ssm.put_parameter(Name=name, Value=value, Type="String", Overwrite=True)
        return int(response.get("Version", 0))
