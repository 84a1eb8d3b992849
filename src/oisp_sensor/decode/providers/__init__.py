"""AI providers (who a request goes to) and API formats (how to read its bodies).

`ProviderRegistry` answers "which provider is this Host?"; `FormatRegistry` answers
"which parser reads this (api_format, path)?". `default_format_registry()` is the table
of known path shapes: OpenAI chat completions has a full parser; the other shapes are
recognised as AI calls and read with the generic parser (model, stream, id) until their
own parser is written, which then replaces the `GENERIC` in its line.
"""

from __future__ import annotations

import re

from oisp_sensor.decode.providers.base import (
    FormatParser,
    FormatRegistry,
    FormatSpec,
    GenericJsonParser,
    ParsedRequest,
    ParsedResponse,
    model_family,
)
from oisp_sensor.decode.providers.openai_chat import OpenAIChatParser
from oisp_sensor.decode.providers.registry import (
    UNKNOWN_PROVIDER,
    HostMatch,
    Provider,
    ProviderRegistry,
    builtin_providers,
    split_host,
)

__all__ = [
    "GENERIC",
    "UNKNOWN_PROVIDER",
    "FormatParser",
    "FormatRegistry",
    "FormatSpec",
    "GenericJsonParser",
    "HostMatch",
    "OpenAIChatParser",
    "ParsedRequest",
    "ParsedResponse",
    "Provider",
    "ProviderRegistry",
    "builtin_providers",
    "default_format_registry",
    "model_family",
    "split_host",
]

GENERIC = GenericJsonParser()
OPENAI_CHAT = OpenAIChatParser()

_AZURE_DEPLOYMENT = re.compile(r"/deployments/(?P<model>[^/]+)/")
_GEMINI_MODEL = re.compile(r"/models/(?P<model>[^/:]+):")
_BEDROCK_MODEL = re.compile(r"/model/(?P<model>[^/]+)/")
_SERVING_ENDPOINT = re.compile(r"/serving-endpoints/(?P<model>[^/]+)/")
_CLOUDFLARE_MODEL = re.compile(r"/ai/run/(?P<model>.+)$")


def _spec(
    name: str,
    request_type: str,
    path: str,
    parser: FormatParser = GENERIC,
    api_formats: tuple[str, ...] | None = None,
    *,
    unknown_host_ok: bool = False,
    path_model: re.Pattern[str] | None = None,
) -> FormatSpec:
    return FormatSpec(
        name=name,
        request_type=request_type,
        path=re.compile(path),
        parser=parser,
        api_formats=frozenset(api_formats) if api_formats is not None else None,
        unknown_host_ok=unknown_host_ok,
        path_model=path_model,
    )


def default_format_registry() -> FormatRegistry:
    """The known API path shapes, most specific first. Paths are matched without query."""
    return FormatRegistry(
        [
            # OpenAI and every OpenAI-compatible server (also Azure's /openai/deployments/{d}/...).
            _spec("openai.chat", "chat", r"(?:^|/)chat/completions$", OPENAI_CHAT,
                  unknown_host_ok=True, path_model=_AZURE_DEPLOYMENT),
            _spec("openai.completions", "completion", r"(?:/v\d+|/deployments/[^/]+)/completions$",
                  unknown_host_ok=True, path_model=_AZURE_DEPLOYMENT),
            _spec("openai.embeddings", "embedding", r"(?:/v\d+|/deployments/[^/]+)/embeddings$",
                  unknown_host_ok=True, path_model=_AZURE_DEPLOYMENT),
            _spec("openai.responses", "chat", r"/v1/responses$", unknown_host_ok=True),
            _spec("openai.images", "image", r"/images/(?:generations|edits|variations)$",
                  path_model=_AZURE_DEPLOYMENT),
            _spec("openai.transcription", "transcription", r"/audio/(?:transcriptions|translations)$",
                  path_model=_AZURE_DEPLOYMENT),
            _spec("openai.speech", "speech", r"/audio/speech$", path_model=_AZURE_DEPLOYMENT),
            _spec("openai.moderation", "moderation", r"/v1/moderations$"),
            # Anthropic Messages (also served by DeepSeek, Moonshot, Z.ai under /anthropic).
            _spec("anthropic.messages", "chat", r"/v1/messages$", unknown_host_ok=True),
            _spec("anthropic.complete", "completion", r"/v1/complete$", api_formats=("anthropic",)),
            # Gemini (AI Studio, Vertex AI, Code Assist): the model is in the path.
            _spec("gemini.generate", "chat", r":(?:streamGenerateContent|generateContent)$",
                  unknown_host_ok=True, path_model=_GEMINI_MODEL),
            _spec("gemini.embed", "embedding", r":(?:embedContent|batchEmbedContents)$",
                  api_formats=("gemini",), path_model=_GEMINI_MODEL),
            _spec("vertex.raw_predict", "chat", r":(?:streamRawPredict|rawPredict)$",
                  api_formats=("gemini",), path_model=_GEMINI_MODEL),
            # AWS Bedrock runtime: InvokeModel / Converse (and their streaming forms).
            _spec("bedrock.invoke", "chat",
                  r"^/model/[^/]+/(?:invoke|invoke-with-response-stream|converse|converse-stream)$",
                  api_formats=("bedrock",), path_model=_BEDROCK_MODEL),
            # Ollama's native API.
            _spec("ollama.chat", "chat", r"^/api/chat$", api_formats=("ollama",)),
            _spec("ollama.generate", "completion", r"^/api/generate$", api_formats=("ollama",)),
            _spec("ollama.embed", "embedding", r"^/api/embed(?:dings)?$", api_formats=("ollama",)),
            # Cohere v1/v2.
            _spec("cohere.chat", "chat", r"^/v[12]/chat$", api_formats=("cohere",)),
            _spec("cohere.embed", "embedding", r"^/v[12]/embed$", api_formats=("cohere",)),
            _spec("cohere.rerank", "rerank", r"^/v[12]/rerank$", api_formats=("cohere",)),
            # IBM watsonx.ai.
            _spec("watsonx.chat", "chat", r"^/ml/v1/text/chat(?:_stream)?$", api_formats=("watsonx",)),
            _spec("watsonx.generation", "completion", r"^/ml/v1/text/generation(?:_stream)?$",
                  api_formats=("watsonx",)),
            _spec("watsonx.embeddings", "embedding", r"^/ml/v1/text/embeddings$", api_formats=("watsonx",)),
            # Cloudflare Workers AI (api.cloudflare.com is mostly not AI: strict provider).
            _spec("cloudflare.run", "other", r"/ai/run/.+$", api_formats=("cloudflare",),
                  path_model=_CLOUDFLARE_MODEL),
            # Databricks model serving.
            _spec("databricks.invocations", "chat", r"/serving-endpoints/[^/]+/invocations$",
                  api_formats=("openai",), path_model=_SERVING_ENDPOINT),
        ]
    )  # fmt: skip
