"""Redaction of everything that leaves the sensor: secrets and personal data.

Modes (the Event Schema seed):

- `safe` (default): content is kept; secrets and personal data are replaced by
  `[REDACTED:<kind>]` and counted; `data.redaction` carries the hash of the originals,
  the kinds found and the count; each changed content field gets `<field>_hash` of its
  original.
- `full`: content is exported as captured (development only; the CLI warns at start).
  Credentials are still never exported: credential headers, URL passwords and
  credential query parameters, and credentials on command lines and in environments
  are replaced in this mode too. Only `data.auth` {type, key_prefix} describes the
  call's own credential, in every mode.
- `minimal`: no content leaves the sensor; each content field is replaced by
  `<field>_length` and `<field>_hash`; metadata (URLs, command lines, error messages)
  is scanned as in `safe`.

Detectors (`detectors.py`, each switchable in `[redaction.detectors]`): API keys of
every provider in the registry plus common credentials (OpenAI, Anthropic, Google,
Groq, xAI, Hugging Face, AWS access keys and secrets, GitHub, Slack, JWTs, bearer and
basic credentials, private keys, passwords in URLs, `password = ...` style
assignments), e-mail addresses, phone numbers, payment card numbers (Luhn-checked),
US SSNs, and the `[redaction] custom_patterns`.

The pipeline builds one `Redactor.from_config(config.redaction, registry)` and calls
`apply(event, mode)` once per distinct mode among its exporters (see
`exporter_modes`); `apply` never modifies its input.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .detectors import (
    CREDENTIAL_DETECTORS,
    DETECTOR_NAMES,
    CustomRule,
    Scanner,
    card_prefix_ok,
    looks_random,
    luhn_ok,
)
from .walker import CONTENT_KEYS, MODES, ModeCounters, Redactor, sha256

if TYPE_CHECKING:
    from oisp_sensor.config import SensorConfig

__all__ = [
    "CONTENT_KEYS",
    "CREDENTIAL_DETECTORS",
    "DETECTOR_NAMES",
    "MODES",
    "CustomRule",
    "ModeCounters",
    "Redactor",
    "Scanner",
    "card_prefix_ok",
    "exporter_modes",
    "full_mode_warnings",
    "looks_random",
    "luhn_ok",
    "sha256",
]

_EXPORTERS = ("jsonl", "websocket", "otlp", "kafka", "webhook")


def exporter_modes(config: SensorConfig) -> dict[str, str]:
    """Effective redaction mode of each enabled exporter: its override, else `[redaction] mode`."""
    default = config.redaction.mode
    modes: dict[str, str] = {}
    for name in _EXPORTERS:
        section = getattr(config.export, name, None)
        if section is None or not getattr(section, "enabled", False):
            continue
        modes[name] = getattr(section, "redaction", None) or default
    return modes


def full_mode_warnings(config: SensorConfig) -> list[str]:
    """One-line warnings to print at start for every destination that gets `full` content."""
    warnings: list[str] = []
    if config.redaction.mode == "full":
        warnings.append(
            "warning: redaction mode is `full`: prompts, responses and personal data are exported "
            "as captured (credentials are still removed)"
        )
    for name, mode in exporter_modes(config).items():
        if mode == "full" and config.redaction.mode != "full":
            warnings.append(
                f"warning: [export.{name}] redaction = 'full': prompts, responses and personal data "
                f"go to {name} as captured (credentials are still removed)"
            )
    return warnings
