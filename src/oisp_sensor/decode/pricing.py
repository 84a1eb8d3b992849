"""USD cost of AI calls from the `genai-prices` package's bundled price data.

No price is written here: `genai-prices` (maintained by Pydantic) ships its data in the
wheel, and only that bundled snapshot is used (its optional auto-updater, which would
fetch prices over the network, is never started).

Speed: the package's own `calc_price` takes about 60 µs, too slow for every response.
Within one price tier, a model's price is a linear function of the usage counts (plus a
per-request constant), so the package is asked once per (model price, tier) for the
price of a few probe usages, exactly in Decimal, and every later call is a handful of
float multiplications. Tiered prices (e.g. above 200k input tokens) are handled by
probing each tier separately: a tier is chosen by total input tokens, as the package
does. A test checks this against `calc_price` across many models.

Usage is the OISP shape: prompt_tokens include cached and cache-write tokens,
completion_tokens include reasoning tokens (as the package expects). Local model
servers (Ollama, vLLM, ...) are never priced: cloud prices do not apply to them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

log = logging.getLogger(__name__)

# OISP provider id -> genai-prices provider id (where they differ or exist at all).
PROVIDER_IDS: dict[str, str] = {
    "openai": "openai",
    "anthropic": "anthropic",
    "google": "google",
    "vertex-ai": "google",
    "gemini-code-assist": "google",
    "aws-bedrock": "aws",
    "azure": "azure",
    "azure-ai-foundry": "azure",
    "mistral": "mistral",
    "groq": "groq",
    "together": "together",
    "fireworks": "fireworks",
    "cerebras": "cerebras",
    "deepseek": "deepseek",
    "xai": "x-ai",
    "perplexity": "perplexity",
    "cohere": "cohere",
    "openrouter": "openrouter",
    "moonshot": "moonshotai",
    "zai": "zai",
    "zhipu": "zhipuai",
    "minimax": "minimax",
    "novita": "novita",
    "ovhcloud": "ovhcloud",
    "databricks": "databricks",
    "baseten": "baseten",
    "github-copilot": "github-copilot",
    "cloudflare-workers-ai": "cloudflare",
    "voyage": "voyageai",
    "meta-llama": "meta",
    "elevenlabs": "elevenlabs",
}
# Keys of the package's Usage that OISP usage maps onto.
_KEYS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "output_reasoning_tokens",
)
_CACHE_MAX = 4096


def package_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("genai-prices")
    except Exception:
        return None


@dataclass(slots=True)
class _Linear:
    """cost = constant + sum of coefficient * count, valid within one price tier."""

    constant: float
    coefficients: tuple[float, ...]  # per _KEYS


class _ModelPricing:
    """Linear pricing of one resolved ModelPrice, per tier (computed on demand)."""

    __slots__ = ("_price", "_thresholds", "_tiers")

    def __init__(self, price: Any) -> None:
        from genai_prices.types import TieredPrices

        self._price = price  # keeps the object (and so its id) alive
        thresholds: set[int] = set()
        for value in vars(price).values():
            if isinstance(value, TieredPrices):
                thresholds.update(tier.start for tier in value.tiers)
        self._thresholds = sorted(thresholds)
        self._tiers: dict[int, _Linear] = {}

    def _tier(self, input_tokens: int) -> int:
        tier = 0
        for start in self._thresholds:
            if input_tokens > start:
                tier += 1
            else:
                break
        return tier

    def _probe(self, tier: int) -> _Linear:
        from genai_prices.types import Usage

        base = self._thresholds[tier - 1] + 2 if tier else 2
        price = self._price

        def calc(**extra: int) -> Decimal:
            counts = {"input_tokens": base, "output_tokens": 0}
            for key, value in extra.items():
                counts[key] = counts.get(key, 0) + value
            return price.calc_price(Usage(**counts))["total_price"]

        at_base = calc()
        with_output = calc(output_tokens=1)
        coefficients = (
            calc(input_tokens=1) - at_base,
            with_output - at_base,
            calc(cache_read_tokens=1) - at_base,
            calc(cache_write_tokens=1) - at_base,
            calc(output_tokens=1, output_reasoning_tokens=1) - with_output,
        )
        constant = at_base - coefficients[0] * base
        return _Linear(float(constant), tuple(float(c) for c in coefficients))

    def input_cost(self, tokens: int) -> float:
        """Price of uncached input tokens only (the common case of estimates, kept short)."""
        linear = self._tiers.get(0) if not self._thresholds else None
        if linear is None:
            return self.cost((tokens, 0, 0, 0, 0))
        return round(linear.constant + linear.coefficients[0] * tokens, 12)

    def cost(self, counts: tuple[int, int, int, int, int]) -> float:
        tier = self._tier(counts[0]) if self._thresholds else 0
        try:
            linear = self._tiers[tier]
        except KeyError:
            linear = self._tiers[tier] = self._probe(tier)
        c = linear.coefficients
        total = (
            linear.constant
            + c[0] * counts[0]
            + c[1] * counts[1]
            + c[2] * counts[2]
            + c[3] * counts[3]
            + c[4] * counts[4]
        )
        return round(total, 12)


class Pricing:
    """Prices usage for (provider, model); None when the package does not know the model.

    `wall_ns` maps capture timestamps to wall-clock nanoseconds, for the few prices
    that depend on the date or the time of day; without it, the time the Pricing was
    created is used (the builder itself never reads a clock).
    """

    def __init__(
        self,
        wall_ns: Callable[[int], int] | None = None,
        *,
        reference_time: datetime | None = None,
        local_providers: frozenset[str] = frozenset(),
    ) -> None:
        self._wall_ns = wall_ns
        self._reference = reference_time or datetime.now(UTC)
        self._local = local_providers
        self._models: dict[tuple[str, str], Any] = {}  # (provider, model) -> ModelInfo | None
        # (provider, model) -> pricing, for models whose price does not depend on the date.
        self._fixed: dict[tuple[str, str], _ModelPricing] = {}
        self._timed: dict[tuple[str, str, int], _ModelPricing] = {}
        self._linear: dict[int, _ModelPricing] = {}
        self._snapshot: Any = None
        self.available = True
        self.lookups_failed = 0

    def _resolve(self, provider_id: str, model: str) -> Any:
        key = (provider_id, model)
        try:
            return self._models[key]
        except KeyError:
            pass
        found = None
        if provider_id not in self._local:
            try:
                if self._snapshot is None:
                    from genai_prices.data_snapshot import get_snapshot

                    self._snapshot = get_snapshot()
                genai_provider = PROVIDER_IDS.get(provider_id)
                _provider, found = self._snapshot.find_provider_model(model, None, genai_provider, None)
            except LookupError:
                found = None
            except Exception:  # an unexpected failure of the package: price nothing more
                log.exception("genai-prices failed; costs are not reported")
                self.available = False
                found = None
            if found is None:
                self.lookups_failed += 1
        if len(self._models) >= _CACHE_MAX:
            self._models.clear()
        self._models[key] = found
        return found

    def _when(self, ts_ns: int) -> datetime:
        if self._wall_ns is None:
            return self._reference
        return datetime.fromtimestamp(self._wall_ns(ts_ns) / 1e9, UTC)

    def _pricing(self, provider_id: str, model: str, ts_ns: int) -> _ModelPricing | None:
        fixed = self._fixed.get((provider_id, model))
        if fixed is not None:
            return fixed
        if not self.available:
            return None
        info = self._resolve(provider_id, model)
        if info is None:
            return None
        prices = info.prices
        if isinstance(prices, list):
            # Date- or hour-dependent prices: resolved once per (model, minute).
            minute = self._minute(ts_ns)
            timed = self._timed.get((provider_id, model, minute))
            if timed is not None:
                return timed
            price = info.get_prices(self._when(ts_ns))
        else:
            price = prices
        linear = self._linear.get(id(price))
        if linear is None:
            linear = self._linear[id(price)] = _ModelPricing(price)
        if not isinstance(prices, list):
            if len(self._fixed) >= _CACHE_MAX:
                self._fixed.clear()
            self._fixed[(provider_id, model)] = linear
        else:
            if len(self._timed) >= _CACHE_MAX:
                self._timed.clear()
            self._timed[(provider_id, model, self._minute(ts_ns))] = linear
        return linear

    def _minute(self, ts_ns: int) -> int:
        return 0 if self._wall_ns is None else self._wall_ns(ts_ns) // 60_000_000_000

    def cost(
        self, provider_id: str, model: str | None, usage: Mapping[str, Any], ts_ns: int = 0
    ) -> float | None:
        """USD for an OISP usage dict, or None (unknown model, local server, no counts)."""
        if not model:
            return None
        prompt = usage.get("prompt_tokens")
        completion = usage.get("completion_tokens")
        if not isinstance(prompt, int) and not isinstance(completion, int):
            return None
        pricing = self._pricing(provider_id, model, ts_ns)
        if pricing is None:
            return None
        counts = (
            prompt if isinstance(prompt, int) else 0,
            completion if isinstance(completion, int) else 0,
            usage.get("cached_tokens") or 0,
            usage.get("cache_write_tokens") or 0,
            usage.get("reasoning_tokens") or 0,
        )
        return pricing.cost(counts)  # type: ignore[arg-type]

    def input_cost(
        self, provider_id: str, model: str | None, input_tokens: int, ts_ns: int = 0
    ) -> float | None:
        """USD for `input_tokens` of uncached input (a request's token_estimate)."""
        if not model:
            return None
        pricing = self._fixed.get((provider_id, model)) or self._pricing(provider_id, model, ts_ns)
        if pricing is None:
            return None
        return pricing.input_cost(input_tokens)
