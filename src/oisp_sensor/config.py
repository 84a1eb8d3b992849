"""Configuration: TOML file, then environment overrides, then command-line flags.

Validated in one place (pydantic models with unknown keys forbidden), so a typo or a
wrong type is a one-line error naming the key, never a silent default.

Environment overrides: OISP_<SECTION>__<KEY>=value, nested with double underscores,
e.g. OISP_REDACTION__MODE=full, OISP_EXPORT__JSONL__PATH=/tmp/e.jsonl. Values are
parsed as TOML values when they look like one (numbers, booleans, arrays), else strings.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from .capture.loader import DEFAULT_HTTP_PORTS
from .decode.file_events import DEFAULT_EXCLUDE as DEFAULT_FILE_EXCLUDE

ENV_PREFIX = "OISP_"
CONFIG_ENV = "OISP_CONFIG"


def default_config_paths() -> list[Path]:
    """Where a config file is looked for when --config is not given (first found wins)."""
    xdg = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return [
        Path("oisp-sensor.toml"),
        Path(xdg) / "oisp-sensor" / "config.toml",
        Path("/etc/oisp-sensor/config.toml"),
        Path("/etc/oisp/config.toml"),
    ]


class ConfigError(ValueError):
    """A configuration problem; str() is one line meant for the user."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class CaptureConfig(Section):
    ssl: bool = True
    process: bool = True
    file: bool = True
    network: bool = True
    # Extra files (libssl copies, executables with a static OpenSSL) to probe.
    ssl_paths: list[str] = Field(default_factory=list)
    ring_buffer_mb_per_cpu: int = Field(default=4, ge=1, le=256)
    wakeup_kb: int = Field(default=256, ge=4, le=65536)
    poll_interval_ms: int = Field(default=50, ge=1, le=5000)
    max_body_mb: int = Field(default=8, ge=1, le=1024)
    idle_timeout_s: float = Field(default=300.0, gt=0)
    # Also report exchanges seen from the server side (a local gateway or model server).
    server_side: bool = False
    # Emit an ai.streaming_chunk event for every chunk of a streamed answer.
    streaming_chunks: bool = True
    # Only these processes (empty: all). Process names are globs on the 15-character
    # kernel name (comm), e.g. "python*", "node".
    pids: list[int] = Field(default_factory=list)
    comm: list[str] = Field(default_factory=list)
    uids: list[int] = Field(default_factory=list)
    exclude_comm: list[str] = Field(default_factory=list)
    # Only this process's descendants (set by `oisp-sensor run` to itself, so that only
    # the command it runs and what that starts are recorded; 0: no such restriction).
    descendants_of: int = 0
    # Only processes in these network namespaces: "self" (the sensor's own), an inode
    # number or a path (/run/netns/NAME, /proc/PID/ns/net). Empty: every namespace.
    netns: list[str] = Field(default_factory=list)

    @field_validator("netns")
    @classmethod
    def _netns_exist(cls, value: list[str]) -> list[str]:
        from .enrich.netns import netns_inode

        for spec in value:
            netns_inode(spec)  # ValueError: a one-line config error naming the key
        return value

    # File events: "ai" = processes that made AI calls and the processes they start
    # afterwards (an agent and its tools); "all" = every process (much more output).
    file_scope: Literal["ai", "all"] = "ai"
    # Path globs (fnmatch: * also matches /). Empty include = every path.
    file_include: list[str] = Field(default_factory=list)
    file_exclude: list[str] = Field(default_factory=lambda: list(DEFAULT_FILE_EXCLUDE))
    # Plain-HTTP capture from socket reads and writes, for connections to these ports
    # (local model servers: Ollama 11434, LM Studio 1234, vLLM 8000, llama.cpp 8080, ...).
    plain_http: bool = True
    http_ports: list[Annotated[int, Field(ge=1, le=65535)]] = Field(
        default_factory=lambda: list(DEFAULT_HTTP_PORTS), max_length=64
    )
    # process.exec carries the environment (redacted like everything else): opt-in,
    # environments are full of credentials.
    process_env: bool = False
    # MCP's stdio transport: processes that speak JSON-RPC on their stdin/stdout pipes
    # (MCP servers an agent started) have those pipes captured.
    mcp_stdio: bool = True


class JsonlExport(Section):
    enabled: bool = True
    path: str = "oisp-events.jsonl"
    append: bool = True
    pretty: bool = False
    flush_each: bool = True
    rotate_size_mb: float = Field(default=0, ge=0)
    rotate_count: int = Field(default=5, ge=0)
    queue_size: int = Field(default=100_000, ge=1)
    # Redaction mode for this destination only (default: [redaction] mode).
    redaction: Literal["safe", "full", "minimal"] | None = None


_Mode = Literal["safe", "full", "minimal"]


class WebSocketExport(Section):
    """[export.websocket]: the live stream (ws://HOST:PORT/ws/events and /ws) on the web port.

    The same server carries /metrics ([export.metrics]) and, later, the dashboard."""

    enabled: bool = False
    port: int = Field(default=7777, ge=0, le=65535)
    # Loopback unless configured: the stream carries what AI agents send and receive.
    host: str = "127.0.0.1"
    # Required when `host` is not a loopback address; clients send it as ?token=... or
    # "Authorization: Bearer ...".
    token: str = ""
    # Browser pages allowed to connect besides loopback origins (e.g. "https://ops.example.com").
    allowed_origins: list[str] = Field(default_factory=list)
    # Messages held for one client before it is too slow and is disconnected (the
    # messages are shared by all clients: a large buffer costs a pointer per message).
    client_buffer: int = Field(default=10_000, ge=1)
    max_clients: int = Field(default=64, ge=1)
    queue_size: int = Field(default=100_000, ge=1)
    # Redaction mode for this destination only (default: [redaction] mode).
    redaction: _Mode | None = None


class MetricsExport(Section):
    """[export.metrics]: Prometheus metrics at /metrics on the web port ([export.websocket]
    host, port and token)."""

    enabled: bool = False
    path: str = Field(default="/metrics", pattern=r"^/[A-Za-z0-9/_.-]*$")
    # Distinct provider/model/app label sets kept; more are counted under model="other".
    max_series: int = Field(default=2000, ge=10)
    queue_size: int = Field(default=100_000, ge=1)


class OtlpExport(Section):
    enabled: bool = False
    # Keys left unset fall back to the standard OTEL_* environment variables
    # (OTEL_EXPORTER_OTLP_ENDPOINT, _PROTOCOL, _HEADERS, _COMPRESSION, _CERTIFICATE,
    # OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES), then to these defaults.
    endpoint: str = "http://localhost:4317"
    protocol: Literal["grpc", "http", "http/protobuf"] = "grpc"
    service_name: str = "oisp-sensor"
    batch_size: int = Field(default=100, ge=1)
    flush_interval_ms: int = Field(default=5000, ge=1)
    headers: dict[str, str] = Field(default_factory=dict)
    tls_cert_path: str = ""
    compression: Literal["none", "gzip"] = "none"
    timeout_ms: int = Field(default=10000, ge=1)
    queue_size: int = Field(default=100_000, ge=1)
    # Redaction mode for this destination only (default: [redaction] mode).
    redaction: _Mode | None = None


class KafkaExport(Section):
    enabled: bool = False
    brokers: list[str] = Field(default_factory=lambda: ["localhost:9092"])
    topic: str = "oisp-events"
    batch_size: int = Field(default=100, ge=1)
    flush_interval_ms: int = Field(default=1000, ge=0)
    compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = "none"
    acks: Literal["0", "1", "all", "-1"] = "all"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER", "GSSAPI"] = ""
    sasl_username: str = ""
    sasl_password: str = ""
    # TLS (security_protocol SSL / SASL_SSL): CA bundle, and a client certificate for mTLS.
    tls_ca_path: str = ""
    tls_cert_path: str = ""
    tls_key_path: str = ""
    # Message key, which keeps related events in one partition and so in order:
    # conversation (an AI conversation, else the AI call, else the process), process, host, none.
    key: Literal["conversation", "process", "host", "none"] = "conversation"
    # How long the client keeps retrying a message before it is counted as dropped.
    delivery_timeout_ms: int = Field(default=120_000, ge=1000)
    client_id: str = "oisp-sensor"
    # Further librdkafka properties, passed as given (e.g. "socket.keepalive.enable").
    options: dict[str, str] = Field(default_factory=dict)
    queue_size: int = Field(default=100_000, ge=1)
    # Redaction mode for this destination only (default: [redaction] mode).
    redaction: _Mode | None = None

    @field_validator("brokers", mode="before")
    @classmethod
    def _split_brokers(cls, value: Any) -> Any:
        # The Export seed writes brokers as "a:9092,b:9092", the Event Schema seed as a list.
        if isinstance(value, str):
            return [b.strip() for b in value.split(",") if b.strip()]
        return value

    @field_validator("acks", mode="before")
    @classmethod
    def _acks_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value

    @field_validator("options", mode="before")
    @classmethod
    def _options_as_text(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in value.items()}
        return value


class WebhookExport(Section):
    enabled: bool = False
    url: str = Field(default="", pattern=r"^(|https?://\S+)$")
    method: Literal["POST", "PUT", "PATCH"] = "POST"
    # batch = true: {"events": [...], "sensor_id": ..., "batch_id": ...} per request;
    # false: one request per event, the event itself as the body.
    batch: bool = True
    batch_size: int = Field(default=10, ge=1)
    flush_interval_ms: int = Field(default=5000, ge=0)
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_ms: int = Field(default=30000, ge=1)
    retry_count: int = Field(default=3, ge=0)
    # Exponential backoff between attempts: this, doubled each time, at most retry_max_backoff_ms.
    retry_backoff_ms: int = Field(default=500, ge=0)
    retry_max_backoff_ms: int = Field(default=30000, ge=0)
    # Authentication: at most one of bearer_token, basic_username/password, api_key.
    bearer_token: str = ""
    basic_username: str = ""
    basic_password: str = ""
    api_key: str = ""
    api_key_header: str = "X-API-Key"
    # HMAC-SHA256 of "<timestamp>.<body>" with this secret, sent as
    # X-OISP-Signature: sha256=<hex> beside X-OISP-Timestamp (see README).
    hmac_secret: str = ""
    sensor_id: str = ""  # default: the host name
    tls_ca_path: str = ""
    tls_verify: bool = True
    queue_size: int = Field(default=100_000, ge=1)
    # Redaction mode for this destination only (default: [redaction] mode).
    redaction: _Mode | None = None

    @model_validator(mode="after")
    def _usable(self) -> WebhookExport:
        if self.enabled and not self.url:
            raise ValueError("url is required when the webhook exporter is enabled")
        auths = [bool(self.bearer_token), bool(self.basic_username), bool(self.api_key)]
        if sum(auths) > 1:
            raise ValueError("give only one of bearer_token, basic_username, api_key")
        return self


class ExportConfig(Section):
    jsonl: JsonlExport = Field(default_factory=JsonlExport)
    websocket: WebSocketExport = Field(default_factory=WebSocketExport)
    metrics: MetricsExport = Field(default_factory=MetricsExport)
    otlp: OtlpExport = Field(default_factory=OtlpExport)
    kafka: KafkaExport = Field(default_factory=KafkaExport)
    webhook: WebhookExport = Field(default_factory=WebhookExport)


class RedactionDetectors(Section):
    """[redaction.detectors]: one switch per built-in detector, all on by default.

    Credential detectors (private_key ... secret_assignments) still run on command
    lines, environments, URLs and headers when switched off: a credential is never
    exported. The names match `oisp_sensor.redact.DETECTOR_NAMES` (a test checks).
    """

    private_key: bool = True  # PEM private key blocks
    bearer: bool = True  # "Bearer <token>", "Basic <base64 user:password>"
    jwt: bool = True  # JSON Web Tokens
    api_keys: bool = True  # API keys of every provider in the registry (sk-, sk-ant-, AIza, gsk_, ...)
    aws: bool = True  # AWS access key ids and secret access keys
    github: bool = True  # ghp_/gho_/ghs_/github_pat_ tokens
    slack: bool = True  # xox?- tokens and hooks.slack.com webhooks
    url_password: bool = True  # scheme://user:PASSWORD@host
    secret_assignments: bool = True  # password = ..., "api_key": "...", Authorization: ...
    email: bool = True
    credit_card: bool = True  # Luhn-checked, real issuer prefixes
    ssn: bool = True  # US social security numbers (123-45-6789)
    phone: bool = True  # international (+CC) and North American formats


class CustomPattern(Section):
    """One `[[redaction.custom_patterns]]` entry: every match becomes [REDACTED:<name>]."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")
    pattern: str
    enabled: bool = True
    _compiled: re.Pattern[str] | None = PrivateAttr(default=None)

    @field_validator("pattern")
    @classmethod
    def _valid_regex(cls, value: str) -> str:
        try:
            compiled = re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        if compiled.fullmatch("") is not None:
            raise ValueError("the pattern matches the empty string")
        return value

    def model_post_init(self, context: Any, /) -> None:
        self._compiled = re.compile(self.pattern)

    @property
    def compiled(self) -> re.Pattern[str]:
        """The pattern, compiled when the config was loaded."""
        if self._compiled is None or self._compiled.pattern != self.pattern:
            self._compiled = re.compile(self.pattern)
        return self._compiled


class RedactionConfig(Section):
    """[redaction]: what the sensor removes before anything leaves it (see oisp_sensor.redact).

    Exporter sections may override `mode` with their own `redaction` key.
    """

    mode: Literal["safe", "full", "minimal"] = "safe"
    detectors: RedactionDetectors = Field(default_factory=RedactionDetectors)
    custom_patterns: list[CustomPattern] = Field(default_factory=list)
    # Also scan file paths (file events, process exe/cwd) and replace home directory
    # user names (/home/<user>/, /Users/<user>/) everywhere.
    redact_paths: bool = False


class ProvidersConfig(Section):
    # Company gateways and proxies: host -> provider id ("openai", ...).
    extra_hosts: dict[str, str] = Field(default_factory=dict)


def _compiles(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from None
    return value


_Text = Annotated[str, Field(min_length=1)]
_Regex = Annotated[str, Field(min_length=1), AfterValidator(_compiles)]


class AppRule(Section):
    """One `[[apps.extra]]` entry: an app of the user's own (or a built-in redefined, same id).

    The keys of the built-in table (oisp_sensor/enrich/apps.toml, which documents them):
    exe and script are globs, module names `python -m` modules, cmdline holds regular
    expressions, parent app ids; expected_providers / expected_hosts make it "profiled".
    """

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")
    name: _Text
    category: str = Field(default="other", pattern=r"^[a-z][a-z0-9-]{0,31}$")
    exe: list[_Text] = Field(default_factory=list)
    script: list[_Text] = Field(default_factory=list)
    module: list[_Text] = Field(default_factory=list)
    cmdline: list[_Regex] = Field(default_factory=list)
    parent: list[_Text] = Field(default_factory=list)
    # Whether processes it starts are attributed to it (default: not for ide, terminal).
    children: bool | None = None
    expected_providers: list[_Text] | None = None
    expected_hosts: list[_Text] | None = None

    @field_validator("id")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value == "unknown":
            raise ValueError("'unknown' is the id of processes no app matched")
        return value

    @model_validator(mode="after")
    def _has_a_rule(self) -> AppRule:
        if not (self.exe or self.script or self.module or self.cmdline or self.parent):
            raise ValueError("an app needs at least one of exe, script, module, cmdline, parent")
        return self


class AppsConfig(Section):
    """[apps]: which AI application each event comes from (see oisp_sensor.enrich.apps)."""

    # Use the built-in table of known apps (the extra apps come first either way).
    builtin: bool = True
    extra: list[AppRule] = Field(default_factory=list)

    @field_validator("extra")
    @classmethod
    def _unique_ids(cls, value: list[AppRule]) -> list[AppRule]:
        seen: set[str] = set()
        for rule in value:
            if rule.id in seen:
                raise ValueError(f"duplicate app id {rule.id!r}")
            seen.add(rule.id)
        return value


class UiConfig(Section):
    """[ui]: what `record` and `run` show. The dashboard is served on the web server of
    [export.websocket] (host, port, token) and needs its live stream."""

    # The web dashboard (http://127.0.0.1:7777 by default); --web / --no-web.
    web: bool = True
    # The terminal UI, when stdout is a terminal; --tui / --no-tui.
    tui: bool = True
    # Events the dashboard keeps in memory (its totals and charts cover every event seen).
    # ~5.5 KB each for a typical mix: 25,000 is ~140 MB, a fair share on a shared node.
    max_events: int = Field(default=25_000, ge=100, le=5_000_000)


class LimitsConfig(Section):
    """[limits]: the sensor's own ceilings (see oisp_sensor.guard). Above one it sheds work
    in a fixed order (streaming chunks and file read/write detail, then bodies, then
    events), counting everything shed. 0 switches a ceiling off."""

    # Resident memory of the sensor process (MiB); shedding starts at 70% of it.
    max_memory_mb: int = Field(default=1024, ge=0, le=1_048_576)
    # CPU of the sensor, in percent of one core (100 = one full core).
    max_cpu_percent: float = Field(default=0, ge=0, le=25_600)
    # Events emitted per second (a token bucket; AI call events are refused last).
    max_events_per_second: int = Field(default=0, ge=0)
    # Raw kernel records waiting to be decoded (MiB); past it records are dropped, counted.
    queue_mb: int = Field(default=64, ge=1, le=4096)
    # At the first level, one ai.streaming_chunk event in this many is kept.
    chunk_sample: int = Field(default=10, ge=1)
    check_interval_s: float = Field(default=1.0, ge=0.1, le=60)


class KubernetesConfig(Section):
    """[kubernetes]: node name and the pod/namespace of containerised processes, read from
    the kubelet's directories on the node (see oisp_sensor.enrich.kubernetes)."""

    enabled: bool = True
    # host.node_name of every event; default: the NODE_NAME environment variable (set by
    # the DaemonSet from the downward API).
    node_name: str = ""
    pods_log_dir: str = "/var/log/pods"
    containers_log_dir: str = "/var/log/containers"


class SensorConfig(Section):
    capture: CaptureConfig = Field(default_factory=CaptureConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)
    redaction: RedactionConfig = Field(default_factory=RedactionConfig)
    providers: ProvidersConfig = Field(default_factory=ProvidersConfig)
    apps: AppsConfig = Field(default_factory=AppsConfig)
    ui: UiConfig = Field(default_factory=UiConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    kubernetes: KubernetesConfig = Field(default_factory=KubernetesConfig)


# Exporters whose implementation is not in this version: accepted, reported when enabled.
NOT_YET_AVAILABLE: tuple[str, ...] = ()


def _format_error(exc: ValidationError, origin: str) -> str:
    err = exc.errors()[0]
    key = ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden":
        what = "unknown key"
    else:
        what = err["msg"].lower()
        if "input" in err and not isinstance(err["input"], dict):
            what += f" (got {err['input']!r})"
    more = len(exc.errors()) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return f"{origin}: {key}: {what}{suffix}"


def _parse_env_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except (tomllib.TOMLDecodeError, RecursionError):
        return raw


def env_overrides(environ: dict[str, str] | os._Environ[str]) -> dict[str, Any]:
    """OISP_A__B__C=value as {"a": {"b": {"c": value}}} (OISP_CONFIG itself excluded)."""
    tree: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or name == CONFIG_ENV or "__" not in name:
            continue
        path = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        node = tree
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"environment {name}: conflicts with another override")
            node = child
        node[path[-1]] = _parse_env_value(raw)
    return tree


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def find_config_file(explicit: str | None, environ: dict[str, str] | os._Environ[str]) -> Path | None:
    if explicit:
        path = Path(explicit)
        if not path.exists():
            raise ConfigError(f"config file {explicit} not found")
        if path.is_dir():
            raise ConfigError(f"config file {explicit} is a directory")
        return path
    if environ.get(CONFIG_ENV):
        path = Path(environ[CONFIG_ENV])
        if not path.is_file():
            raise ConfigError(f"{CONFIG_ENV}={path}: file not found")
        return path
    for path in default_config_paths():
        try:
            if path.is_file():
                return path
        except OSError:  # e.g. HOME is root's while running as another user: not ours to read
            continue
    return None


def load_config(
    explicit_path: str | None = None,
    overrides: dict[str, Any] | None = None,
    environ: dict[str, str] | os._Environ[str] | None = None,
) -> tuple[SensorConfig, Path | None]:
    """File, then environment, then `overrides` (from flags). Raises ConfigError."""
    environ = os.environ if environ is None else environ
    path = find_config_file(explicit_path, environ)
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: not UTF-8 (byte {exc.start})") from None
        except RecursionError:  # tomllib recurses on nested arrays and inline tables
            raise ConfigError(f"{path}: not valid TOML: values nested too deeply") from None
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
        try:
            SensorConfig.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(_format_error(exc, str(path))) from None
    env = env_overrides(environ)
    if env:
        data = _merge(data, env)
        try:
            SensorConfig.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(_format_error(exc, "environment OISP_*")) from None
    if overrides:
        data = _merge(data, overrides)
    try:
        return SensorConfig.model_validate(data), path
    except ValidationError as exc:
        raise ConfigError(_format_error(exc, "command line")) from None


def unavailable_exporters(config: SensorConfig) -> list[str]:
    """Enabled sections whose exporter this version does not have yet."""
    return [name for name in NOT_YET_AVAILABLE if getattr(config.export, name).enabled]
