"""The base of every config section: unknown keys and non-finite numbers are refused, and a section dumps to
plain YAML-able data."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # .nan / .inf fit no typed key

    def to_dict(self) -> dict:
        """Plain data with the reference key names (unset optional blocks dropped): what ``config.yaml`` holds."""
        return self.model_dump(mode="json", exclude_none=True)
