"""AI providers (who a request goes to) and API formats (how to read its bodies).

`ProviderRegistry` answers "which provider is this Host?"; `FormatRegistry` answers
"which parser reads this (api_format, path)?". `default_format_registry()` is the table
of known path shapes, each with its format parser; shapes without a dedicated parser
(images, audio, moderation, rerank, watsonx, Cloudflare) are still recognised as AI
calls and read with the generic parser (model, stream, id).
"""

from __future__ import annotations

import re

from oisp_sensor.decode.providers import bedrock
from oisp_sensor.decode.providers.anthropic_messages import AnthropicMessagesParser
from oisp_sensor.decode.providers.base import (
    Dispatch,
    FormatParser,
    FormatRegistry,
    FormatSpec,
    GenericJsonParser,
    ParsedRequest,
    ParsedResponse,
    model_family,
)
from oisp_sensor.decode.providers.cohere import CohereChatParser, CohereEmbedParser
from oisp_sensor.decode.providers.gemini import GeminiEmbedParser, GeminiParser
from oisp_sensor.decode.providers.ollama import OllamaEmbedParser, OllamaParser
from oisp_sensor.decode.providers.openai_chat import OpenAIChatParser
from oisp_sensor.decode.providers.openai_completions import OpenAICompletionsParser
from oisp_sensor.decode.providers.openai_embeddings import OpenAIEmbeddingsParser
from oisp_sensor.decode.providers.openai_responses import OpenAIResponsesParser
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
OPENAI_COMPLETIONS = OpenAICompletionsParser()
OPENAI_EMBEDDINGS = OpenAIEmbeddingsParser()
OPENAI_RESPONSES = OpenAIResponsesParser()
ANTHROPIC = AnthropicMessagesParser()
GEMINI = GeminiParser()
GEMINI_STREAM = GeminiParser(streaming=True)
GEMINI_EMBED = GeminiEmbedParser()
COHERE_CHAT = CohereChatParser()
COHERE_EMBED = CohereEmbedParser()
OLLAMA_CHAT = OllamaParser(chat=True)
OLLAMA_GENERATE = OllamaParser(chat=False)
OLLAMA_EMBED = OllamaEmbedParser()
_ANTHROPIC_STREAM = AnthropicMessagesParser(streaming=True)
_ANTHROPIC_ONCE = AnthropicMessagesParser(streaming=False)


def _gemini_dispatch(model: str | None, path: str) -> FormatParser:
    """`:streamGenerateContent` streams whatever the body says."""
    return GEMINI_STREAM if path.endswith(":streamGenerateContent") else GEMINI


def _vertex_raw_dispatch(model: str | None, path: str) -> FormatParser:
    """Vertex rawPredict: the partner model's own body (Anthropic, Mistral's OpenAI-like)."""
    streaming = path.endswith(":streamRawPredict")
    if "/publishers/anthropic/" in path:
        return _ANTHROPIC_STREAM if streaming else _ANTHROPIC_ONCE
    if "/publishers/mistralai/" in path or "/publishers/meta/" in path:
        return OPENAI_CHAT
    return GENERIC


def _vertex_predict_dispatch(model: str | None, path: str) -> FormatParser:
    """Vertex `:predict` is embeddings for embedding models, anything else otherwise."""
    return GEMINI_EMBED if model and "embed" in model.lower() else GENERIC


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
    dispatch: Dispatch | None = None,
) -> FormatSpec:
    return FormatSpec(
        name=name,
        request_type=request_type,
        path=re.compile(path),
        parser=parser,
        api_formats=frozenset(api_formats) if api_formats is not None else None,
        unknown_host_ok=unknown_host_ok,
        path_model=path_model,
        dispatch=dispatch,
    )


def default_format_registry() -> FormatRegistry:
    """The known API path shapes, most specific first. Paths are matched without query."""
    return FormatRegistry(
        [
            # OpenAI and every OpenAI-compatible server (also Azure's /openai/deployments/{d}/...).
            _spec("openai.chat", "chat", r"(?:^|/)chat/completions$", OPENAI_CHAT,
                  unknown_host_ok=True, path_model=_AZURE_DEPLOYMENT),
            _spec("openai.completions", "completion", r"(?:/v\d+|/deployments/[^/]+)/completions$",
                  OPENAI_COMPLETIONS, unknown_host_ok=True, path_model=_AZURE_DEPLOYMENT),
            _spec("openai.embeddings", "embedding", r"(?:/v\d+|/deployments/[^/]+|/openai)/embeddings$",
                  OPENAI_EMBEDDINGS, unknown_host_ok=True, path_model=_AZURE_DEPLOYMENT),
            _spec("openai.responses", "responses", r"(?:/v1|/openai)/responses$", OPENAI_RESPONSES,
                  unknown_host_ok=True),
            _spec("openai.images", "image", r"/images/(?:generations|edits|variations)$",
                  path_model=_AZURE_DEPLOYMENT),
            _spec("openai.transcription", "transcription", r"/audio/(?:transcriptions|translations)$",
                  path_model=_AZURE_DEPLOYMENT),
            _spec("openai.speech", "speech", r"/audio/speech$", path_model=_AZURE_DEPLOYMENT),
            _spec("openai.moderation", "moderation", r"/v1/moderations$"),
            # Anthropic Messages (also served by DeepSeek, Moonshot, Z.ai under /anthropic).
            _spec("anthropic.messages", "chat", r"/v1/messages$", ANTHROPIC, unknown_host_ok=True),
            _spec("anthropic.complete", "completion", r"/v1/complete$", api_formats=("anthropic",)),
            # Gemini (AI Studio, Vertex AI, Code Assist): the model is in the path.
            _spec("gemini.generate", "chat", r":(?:streamGenerateContent|generateContent)$", GEMINI,
                  unknown_host_ok=True, path_model=_GEMINI_MODEL, dispatch=_gemini_dispatch),
            _spec("gemini.embed", "embedding", r":(?:embedContent|batchEmbedContents)$", GEMINI_EMBED,
                  api_formats=("gemini",), path_model=_GEMINI_MODEL),
            _spec("vertex.raw_predict", "chat", r":(?:streamRawPredict|rawPredict)$",
                  api_formats=("gemini",), path_model=_GEMINI_MODEL, dispatch=_vertex_raw_dispatch),
            _spec("vertex.predict", "other", r"/models/[^/:]+:predict$", api_formats=("gemini",),
                  path_model=_GEMINI_MODEL, dispatch=_vertex_predict_dispatch),
            # AWS Bedrock runtime: Converse / ConverseStream, InvokeModel (+ its stream).
            _spec("bedrock.converse", "chat", r"^/model/[^/]+/(?:converse|converse-stream)$",
                  api_formats=("bedrock",), path_model=_BEDROCK_MODEL, dispatch=bedrock.dispatch),
            _spec("bedrock.invoke", "chat", r"^/model/[^/]+/(?:invoke|invoke-with-response-stream)$",
                  api_formats=("bedrock",), path_model=_BEDROCK_MODEL, dispatch=bedrock.dispatch),
            # Ollama's native API.
            _spec("ollama.chat", "chat", r"^/api/chat$", OLLAMA_CHAT, api_formats=("ollama",)),
            _spec("ollama.generate", "completion", r"^/api/generate$", OLLAMA_GENERATE,
                  api_formats=("ollama",)),
            _spec("ollama.embed", "embedding", r"^/api/embed(?:dings)?$", OLLAMA_EMBED, api_formats=("ollama",)),
            # Cohere v1/v2.
            _spec("cohere.chat", "chat", r"^/v[12]/chat$", COHERE_CHAT, api_formats=("cohere",)),
            _spec("cohere.embed", "embedding", r"^/v[12]/embed$", COHERE_EMBED, api_formats=("cohere",)),
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
                  OPENAI_CHAT, api_formats=("openai",), path_model=_SERVING_ENDPOINT),
        ]
    )  # fmt: skip
