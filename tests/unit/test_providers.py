"""Provider registry: the shipped table, host lookup, extra hosts, key prefixes, model families."""

from __future__ import annotations

import re

import pytest

from oisp_sensor.decode.providers import (
    Provider,
    ProviderRegistry,
    builtin_providers,
    default_format_registry,
    model_family,
    split_host,
)
from oisp_sensor.decode.providers.registry import parse_providers


@pytest.fixture(scope="module")
def reg() -> ProviderRegistry:
    return ProviderRegistry.default()


def pid(reg: ProviderRegistry, host: str) -> str | None:
    match = reg.lookup(host)
    return match.provider.id if match else None


# ---- the shipped table -----------------------------------------------------------------------


def test_table_is_large_and_valid() -> None:
    providers = builtin_providers()
    assert len(providers) >= 95  # "OISP detects 95+ AI providers"
    ids = [p.id for p in providers]
    assert len(ids) == len(set(ids))
    for p in providers:
        assert re.fullmatch(r"[a-z0-9][a-z0-9._-]*", p.id), p.id
        assert p.name and p.api_format
        assert p.domains or p.domain_patterns or p.default_ports, p.id
        for d in p.domains:
            assert d == d.lower() and ":" not in d and "*" not in d and "/" not in d, d
        for pattern in p.domain_patterns:
            assert "*" in pattern and pattern == pattern.lower(), pattern


def test_seed_provider_ids_and_names(reg: ProviderRegistry) -> None:
    # seeds/002 Providers table
    expected = {
        "api.openai.com": ("openai", "OpenAI"),
        "api.anthropic.com": ("anthropic", "Anthropic"),
        "generativelanguage.googleapis.com": ("google", None),
        "myres.openai.azure.com": ("azure", "Azure OpenAI"),
        "bedrock-runtime.us-east-1.amazonaws.com": ("aws-bedrock", "AWS Bedrock"),
        "api.mistral.ai": ("mistral", None),
        "api.groq.com": ("groq", "Groq"),
        "api.together.xyz": ("together", None),
        "localhost:11434": ("ollama", "Ollama"),
    }
    for host, (provider_id, name) in expected.items():
        match = reg.lookup(host)
        assert match is not None, host
        assert match.provider.id == provider_id
        if name:
            assert match.provider.name == name


@pytest.mark.parametrize(
    ("host", "provider_id"),
    [
        ("us-central1-aiplatform.googleapis.com", "vertex-ai"),
        ("europe-west4-aiplatform.googleapis.com", "vertex-ai"),
        ("aiplatform.googleapis.com", "vertex-ai"),
        ("api.cohere.com", "cohere"),
        ("api.deepseek.com", "deepseek"),
        ("openrouter.ai", "openrouter"),
        ("api.x.ai", "xai"),
        ("api.fireworks.ai", "fireworks"),
        ("api.perplexity.ai", "perplexity"),
        ("api.cerebras.ai", "cerebras"),
        ("router.huggingface.co", "huggingface"),
        ("xyz123.us-east-1.aws.endpoints.huggingface.cloud", "huggingface"),
        ("api.replicate.com", "replicate"),
        ("127.0.0.1:1234", "lmstudio"),
        ("localhost:8000", "vllm"),
        ("bedrock-runtime-fips.us-gov-west-1.amazonaws.com", "aws-bedrock"),
        ("runtime.sagemaker.eu-west-1.amazonaws.com", "aws-sagemaker"),
        ("api.githubcopilot.com", "github-copilot"),
        ("api.individual.githubcopilot.com", "github-copilot"),
    ],
)
def test_known_hosts(reg: ProviderRegistry, host: str, provider_id: str) -> None:
    assert pid(reg, host) == provider_id


# ---- normalisation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("api.openai.com", ("api.openai.com", None)),
        ("API.OpenAI.COM:443", ("api.openai.com", 443)),
        (" api.openai.com. ", ("api.openai.com", None)),
        ("api.openai.com.:8443", ("api.openai.com", 8443)),
        ("[::1]:11434", ("::1", 11434)),
        ("[::1]", ("::1", None)),
        ("::1", ("::1", None)),
        ("host:notaport", ("host:notaport", None)),
        ("", ("", None)),
    ],
)
def test_split_host(value: str, expected: tuple[str, int | None]) -> None:
    assert split_host(value) == expected


def test_lookup_ports_case_and_trailing_dot(reg: ProviderRegistry) -> None:
    for host in ("api.openai.com", "API.OPENAI.COM", "api.openai.com:443", "Api.OpenAI.com.:443"):
        match = reg.lookup(host)
        assert match is not None and match.provider.id == "openai"
        assert match.host == "api.openai.com"
        assert match.via == "domain" and not match.strict
    assert reg.lookup("api.openai.com:8443").port == 8443  # type: ignore[union-attr]


def test_patterns_match_one_label_only(reg: ProviderRegistry) -> None:
    match = reg.lookup("contoso-eastus.openai.azure.com")
    assert match is not None and match.provider.id == "azure" and match.via == "pattern"
    assert pid(reg, "openai.azure.com") is None  # "*" needs at least one character
    assert pid(reg, "a.b.openai.azure.com") is None  # and never spans a dot
    assert pid(reg, "bedrock-runtime.amazonaws.com") is None
    assert pid(reg, "bedrock.us-east-1.amazonaws.com") is None  # control plane, not runtime
    assert pid(reg, "evil-api.openai.com") is None
    assert pid(reg, "api.openai.com.evil.net") is None


def test_unknown_and_non_ai_hosts(reg: ProviderRegistry) -> None:
    for host in ("pypi.org", "files.pythonhosted.org", "github.com", "huggingface.co", "example.com", ""):
        assert reg.lookup(host) is None, host


def test_local_ports_are_weak_evidence(reg: ProviderRegistry) -> None:
    match = reg.lookup("localhost:11434")
    assert match is not None and match.via == "port" and match.strict
    match = reg.lookup("[::1]:1234")
    assert match is not None and match.provider.id == "lmstudio" and match.strict
    # a domain match wins over a port
    match = reg.lookup("api.openai.com:8000")
    assert match is not None and match.provider.id == "openai"
    # no explicit port: no port match
    assert reg.lookup("localhost") is None


def test_lookup_cache_is_bounded() -> None:
    reg = ProviderRegistry.default()
    for i in range(10_000):
        reg.lookup(f"host{i}.example.com")
    assert len(reg._cache) <= 4096


# ---- extra hosts -----------------------------------------------------------------------------


def test_extra_hosts_map_to_existing_and_new_providers() -> None:
    reg = ProviderRegistry.default(
        {
            "llm-gateway.corp.internal": "openai",
            "gpu-box.lan:9000": "vllm",
            "*.ai.corp.example": {"id": "corp-ai", "name": "Corp AI", "api_format": "openai"},
            "claude-proxy.corp.example": {"id": "anthropic"},
        }
    )
    match = reg.lookup("LLM-Gateway.corp.internal:443")
    assert match is not None and match.provider.id == "openai" and match.via == "extra"
    assert pid(reg, "gpu-box.lan:9000") == "vllm"
    assert pid(reg, "gpu-box.lan:9001") is None
    match = reg.lookup("eu.ai.corp.example")
    assert match is not None and match.provider == Provider(id="corp-ai", name="Corp AI", api_format="openai")
    assert pid(reg, "claude-proxy.corp.example") == "anthropic"
    assert reg.get("corp-ai") is not None
    # built-ins still work
    assert pid(reg, "api.groq.com") == "groq"


def test_extra_hosts_override_builtins_and_invalidate_cache() -> None:
    reg = ProviderRegistry.default()
    assert pid(reg, "api.groq.com") == "groq"
    reg.add_host("api.groq.com", "openrouter")
    assert pid(reg, "api.groq.com") == "openrouter"


@pytest.mark.parametrize(
    "entry",
    ["no-such-provider", {"name": "missing id"}, {"id": "Bad Id"}, {"id": "openai", "name": "Not OpenAI"}],
)
def test_extra_hosts_rejects_bad_entries(entry: object) -> None:
    reg = ProviderRegistry.default()
    with pytest.raises(ValueError):
        reg.add_host("x.example.com", entry)  # type: ignore[arg-type]


def test_parse_providers_rejects_conflicts() -> None:
    text = """
[[provider]]
id = "a"
name = "A"
domains = ["x.example"]
[[provider]]
id = "b"
name = "B"
domains = ["x.example"]
"""
    with pytest.raises(ValueError, match="claimed"):
        ProviderRegistry(parse_providers(text))
    with pytest.raises(ValueError):
        parse_providers('[[provider]]\nid = "a"\nports = ["x"]\n')


# ---- key prefixes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "provider_id", "prefix"),
    [
        ("sk-proj-" + "A" * 120, "openai", "sk-proj-"),
        ("sk-" + "a" * 48, "openai", "sk-"),
        ("sk-svcacct-" + "b" * 60, "openai", "sk-svcacct-"),
        ("sk-ant-api03-" + "c" * 90, "anthropic", "sk-ant-api03-"),
        ("gsk_" + "d" * 52, "groq", "gsk_"),
        ("xai-" + "e" * 70, "xai", "xai-"),
        ("AIzaSy" + "f" * 33, "google", "AIza"),
        ("hf_" + "g" * 34, "huggingface", "hf_"),
        ("sk-or-v1-" + "h" * 64, "openrouter", "sk-or-v1-"),
        # a known prefix from another provider still counts (a key sent to a proxy)
        ("sk-ant-api03-" + "i" * 90, None, "sk-ant-api03-"),
        # unknown shape: first 4 characters only
        ("abcdef0123456789abcdef", "mistral", "abcd"),
        # too short to show anything
        ("ollama", "ollama", None),
        ("sk-1234567", "openai", None),
    ],
)
def test_key_prefix(reg: ProviderRegistry, key: str, provider_id: str | None, prefix: str | None) -> None:
    provider = reg.get(provider_id) if provider_id else None
    assert reg.key_prefix(key, provider) == prefix


# ---- formats ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("api_format", "path", "name"),
    [
        ("openai", "/v1/chat/completions", "openai.chat"),
        ("openai", "/chat/completions", "openai.chat"),
        ("openai", "/openai/deployments/my-gpt4o/chat/completions", "openai.chat"),
        ("ollama", "/v1/chat/completions", "openai.chat"),
        ("ollama", "/api/chat", "ollama.chat"),
        ("openai", "/api/chat", None),
        ("anthropic", "/v1/messages", "anthropic.messages"),
        ("gemini", "/v1beta/models/gemini-2.0-flash:generateContent", "gemini.generate"),
        ("bedrock", "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/invoke", "bedrock.invoke"),
        ("openai", "/v1/embeddings", "openai.embeddings"),
        ("openai", "/v1/models", None),
    ],
)
def test_format_lookup(api_format: str, path: str, name: str | None) -> None:
    spec = default_format_registry().find(api_format, path)
    assert (spec.name if spec else None) == name


def test_format_path_model() -> None:
    formats = default_format_registry()
    spec = formats.find("bedrock", "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/invoke")
    assert spec is not None
    assert spec.model_from_path("/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/invoke") == (
        "anthropic.claude-3-5-sonnet-20240620-v1:0"
    )
    spec = formats.find("openai", "/openai/deployments/my-gpt4o/chat/completions")
    assert (
        spec is not None
        and spec.model_from_path("/openai/deployments/my-gpt4o/chat/completions") == "my-gpt4o"
    )


def test_unknown_host_shapes() -> None:
    formats = default_format_registry()
    assert formats.find_for_unknown_host("/v1/chat/completions") is not None
    assert formats.find_for_unknown_host("/api/v1/chat/completions") is not None
    assert formats.find_for_unknown_host("/v1/messages") is not None
    assert formats.find_for_unknown_host("/api/chat") is None
    assert formats.find_for_unknown_host("/v1/models") is None
    assert formats.find_for_unknown_host("/upload") is None


# ---- model families --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "family"),
    [
        ("gpt-4o", "gpt-4"),
        ("gpt-4o-mini", "gpt-4"),
        ("gpt-4o-2024-08-06", "gpt-4"),
        ("gpt-4-turbo", "gpt-4"),
        ("gpt-4-0613", "gpt-4"),
        ("gpt-4", "gpt-4"),
        ("chatgpt-4o-latest", "gpt-4"),
        ("gpt-4.1", "gpt-4.1"),
        ("gpt-4.1-nano-2025-04-14", "gpt-4.1"),
        ("gpt-5", "gpt-5"),
        ("gpt-5-mini", "gpt-5"),
        ("gpt-3.5-turbo-0125", "gpt-3.5"),
        ("gpt-oss-120b", "gpt-oss"),
        ("o1", "o-series"),
        ("o1-preview", "o-series"),
        ("o3-mini", "o-series"),
        ("o4-mini-2025-04-16", "o-series"),
        ("claude-3-5-sonnet-20241022", "claude-3.5"),
        ("claude-3-5-haiku-latest", "claude-3.5"),
        ("claude-3-7-sonnet-20250219", "claude-3.7"),
        ("claude-3-opus-20240229", "claude-3"),
        ("claude-sonnet-4-20250514", "claude-4"),
        ("claude-opus-4-1-20250805", "claude-4.1"),
        ("claude-sonnet-4-5", "claude-4.5"),
        ("claude-2.1", "claude-2"),
        ("anthropic/claude-3.5-sonnet", "claude-3.5"),
        ("us.anthropic.claude-3-5-sonnet-20241022-v2:0", "claude-3.5"),
        ("gemini-1.5-pro", "gemini-1.5"),
        ("models/gemini-2.5-flash", "gemini-2.5"),
        ("llama3.1:8b", "llama-3.1"),
        ("meta-llama/Meta-Llama-3.1-70B-Instruct", "llama-3.1"),
        ("llama-3.3-70b-versatile", "llama-3.3"),
        ("mistral-large-latest", "mistral-large"),
        ("mixtral-8x7b-32768", "mixtral"),
        ("codestral-2501", "codestral"),
        ("qwen2.5-coder:7b", "qwen-2.5"),
        ("grok-3-mini", "grok-3"),
        ("command-r-plus", "command-r"),
        ("text-embedding-3-small", "text-embedding-3"),
        ("deepseek-chat", "deepseek"),
        ("phi-3-mini", "phi-3"),
        ("gemma2:9b", "gemma2"),
        ("my-deployment", "my"),
    ],
)
def test_model_family(model: str, family: str) -> None:
    assert model_family(model) == family
