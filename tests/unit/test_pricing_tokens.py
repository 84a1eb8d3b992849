"""Cost from genai-prices' bundled data, and offline token counts."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from genai_prices import Usage, calc_price

from oisp_sensor.decode.pricing import PROVIDER_IDS, Pricing
from oisp_sensor.decode.tokens import HEURISTIC_METHOD, TokenCounter, heuristic_tokens

WHEN = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("openai", "gpt-4o-mini"), ("openai", "o3-mini"), ("anthropic", "claude-sonnet-4-5"),
        ("google", "gemini-2.5-pro"), ("google", "gemini-2.0-flash"), ("deepseek", "deepseek-chat"),
        ("aws-bedrock", "anthropic.claude-3-5-sonnet-20241022-v2:0"), ("groq", "llama-3.3-70b-versatile"),
        ("mistral", "mistral-large-latest"), ("cohere", "command-r-plus"), ("xai", "grok-3"),
    ],
)  # fmt: skip
def test_fast_path_equals_the_package(provider: str, model: str) -> None:
    """The linear (per tier) fast path gives what calc_price gives, tiers included."""
    pricing = Pricing(reference_time=WHEN)
    rnd = random.Random(model)
    for _ in range(25):
        inp = rnd.choice([10, 1_000, 150_000, 250_000, 400_000])
        cached = rnd.randint(0, inp // 2)
        write = rnd.randint(0, (inp - cached) // 3)
        out = rnd.randint(0, 5_000)
        reasoning = rnd.randint(0, out)
        usage = {"prompt_tokens": inp, "completion_tokens": out, "cached_tokens": cached,
                 "cache_write_tokens": write, "reasoning_tokens": reasoning}  # fmt: skip
        expected = calc_price(
            Usage(input_tokens=inp, output_tokens=out, cache_read_tokens=cached, cache_write_tokens=write,
                  output_reasoning_tokens=reasoning),
            model, provider_id=PROVIDER_IDS[provider], genai_request_timestamp=WHEN,
        ).total_price  # fmt: skip
        assert pricing.cost(provider, model, usage) == pytest.approx(float(expected), rel=1e-9, abs=1e-12)


def test_unknown_local_and_missing() -> None:
    pricing = Pricing(reference_time=WHEN, local_providers=frozenset({"ollama"}))
    usage = {"prompt_tokens": 1000, "completion_tokens": 100}
    assert pricing.cost("openai", "no-such-model-xyz", usage) is None
    assert pricing.cost("ollama", "gpt-4o", usage) is None  # self-hosted: never priced
    assert pricing.cost("openai", None, usage) is None
    assert pricing.cost("openai", "gpt-4o", {"total_tokens": 5}) is None
    assert pricing.cost("unknown", "gpt-4o", usage) == pytest.approx(
        1000 * 2.5e-6 + 100 * 10e-6
    )  # by model name
    assert pricing.input_cost("openai", "gpt-4o-mini", 1_000_000) == pytest.approx(0.15)


def test_time_of_day_prices_follow_the_wall_clock() -> None:
    """DeepSeek's off-peak discount: the price depends on the request's wall-clock time."""
    usage = {"prompt_tokens": 1_000_000, "completion_tokens": 0}
    peak = datetime(2025, 2, 20, 4, 0, tzinfo=UTC)
    off_peak = datetime(2025, 2, 20, 17, 0, tzinfo=UTC)
    wall = {1: int(peak.timestamp() * 1e9), 2: int(off_peak.timestamp() * 1e9)}
    pricing = Pricing(wall.__getitem__)
    for ts, when in ((1, peak), (2, off_peak)):
        expected = calc_price(Usage(input_tokens=1_000_000), "deepseek-chat", provider_id="deepseek",
                              genai_request_timestamp=when).total_price  # fmt: skip
        assert pricing.cost("deepseek", "deepseek-chat", usage, ts) == pytest.approx(float(expected))


def test_token_counts() -> None:
    counter = TokenCounter()
    assert counter.method == "cl100k_base"
    assert counter.count("Hello world") == 2
    assert counter.count("") == 0
    assert counter.count("<|endoftext|>") > 1  # special tokens are plain text here
    big = "word " * 60_000  # past the BPE cap: counted on the head, scaled
    assert abs(counter.count(big) - 60_000) <= 600
    heuristic = TokenCounter(use_bpe=False)
    assert heuristic.method == HEURISTIC_METHOD
    assert heuristic.count("Hello world") == 3


def test_heuristic() -> None:
    assert heuristic_tokens("") == 0
    assert heuristic_tokens("abcd") == 1
    assert heuristic_tokens("abcde") == 2
    assert heuristic_tokens("你好世界") == 4  # one per CJK character
    assert heuristic_tokens("héllo") == 2  # (4 ascii + 1 wide): ceil(4/4) + 1
