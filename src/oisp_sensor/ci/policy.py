"""The validation policy: a TOML file whose keys are the `validate` flags' names.

    expect_types = ["ai.request", "ai.response"]   # --expect-type
    only_providers = ["openai"]                     # --only-providers
    max_tokens = 10000                              # --max-tokens
    no_secrets = true                               # --no-secrets

Validated with pydantic like the sensor config (unknown keys and wrong types are one line
naming the key). Flags add to the file's lists and replace its numbers.
"""

from __future__ import annotations

import tomllib
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

_Name = Annotated[str, Field(min_length=1)]


class PolicyError(ValueError):
    """A policy problem; str() is one line meant for the user."""


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # At least one event of each type (globs: "agent.*").
    expect_types: list[_Name] = Field(default_factory=list)
    # At least one AI call to each provider (id "openai" or name "OpenAI") / model (globs).
    expect_providers: list[_Name] = Field(default_factory=list)
    expect_models: list[_Name] = Field(default_factory=list)
    # Every AI call goes to one of these providers / models.
    only_providers: list[_Name] = Field(default_factory=list)
    only_models: list[_Name] = Field(default_factory=list)
    # Totals over the file's ai.response events; latency is per response.
    max_tokens: int | None = Field(default=None, ge=0)
    max_cost: float | None = Field(default=None, ge=0)  # USD
    max_latency_ms: float | None = Field(default=None, ge=0)
    max_requests: int | None = Field(default=None, ge=0)
    max_errors: int | None = Field(default=None, ge=0)  # ai.response with success false
    # Some response's content contains each phrase (case-sensitive, like grep).
    response_contains: list[_Name] = Field(default_factory=list)
    # No credential / no personal data anywhere in any event (the redaction detectors).
    no_secrets: bool = False
    no_pii: bool = False
    # No event of these types (globs), no file under these paths (globs) touched or present.
    forbid_types: list[_Name] = Field(default_factory=list)
    forbid_files: list[_Name] = Field(default_factory=list)
    # An events file with no events passes the events-file check.
    allow_empty: bool = False

    @field_validator(
        "expect_types", "expect_providers", "expect_models", "only_providers", "only_models",
        "response_contains", "forbid_types", "forbid_files", mode="before",
    )  # fmt: skip
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    def is_empty(self) -> bool:
        return self == Policy(allow_empty=self.allow_empty)


def _format(exc: ValidationError, origin: str) -> str:
    err = exc.errors()[0]
    key = ".".join(str(p) for p in err["loc"]) or "(file)"
    what = "unknown key" if err["type"] == "extra_forbidden" else err["msg"].lower()
    if err["type"] != "extra_forbidden" and "input" in err and not isinstance(err["input"], dict):
        what += f" (got {err['input']!r})"
    more = len(exc.errors()) - 1
    return f"{origin}: {key}: {what}" + (
        f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    )


def load_policy(path: str | None, overrides: dict[str, Any]) -> Policy:
    """The policy file (if any) with the flags' `overrides` on top. Raises PolicyError."""
    data: dict[str, Any] = {}
    if path:
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except FileNotFoundError:
            raise PolicyError(f"policy file {path} not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise PolicyError(f"{path}: not valid TOML: {exc}") from None
        except OSError as exc:
            raise PolicyError(f"policy file {path}: cannot read: {exc.strerror or exc}") from None
        if isinstance(data.get("validate"), dict) and len(data) == 1:
            data = data["validate"]  # the same keys under a [validate] table
        try:
            Policy.model_validate(data)
        except ValidationError as exc:
            raise PolicyError(_format(exc, path)) from None
    for key, value in overrides.items():
        if isinstance(value, list):
            existing = data.get(key) or []
            data[key] = [*([existing] if isinstance(existing, str) else existing), *value]
        else:
            data[key] = value
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(_format(exc, "command line")) from None
