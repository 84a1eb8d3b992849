"""The event walker: applies a redaction mode to a whole OISP event.

Why a generic walk rather than a list of paths: every decoder (OpenAI, Anthropic,
Gemini, agent events, process and file events...) puts content in slightly different
places, and a path list silently lets the next new field through. So every string leaf
of `data` is scanned, except under keys known to hold only identifiers and metadata
(`id`, `model`, `role`, `*_hash`, ...), which is also what keeps the cost down.

What each mode does (see the package docstring for the why):

=============  ==================================  ====================================
string kind    safe / minimal                      full
=============  ==================================  ====================================
content        safe: detectors (switches apply);   kept as captured
(CONTENT_KEYS) minimal: removed, `<key>_length`
               and `<key>_hash` kept
URLs           userinfo password, credential       same (credentials only)
               query parameters, then detectors
headers        credential headers replaced, rest   credential headers replaced,
               scanned                             credentials scanned
cmdline, args, secret-named variables and flag     same
env            values replaced, rest scanned
file paths     only with `redact_paths`: home      untouched
               directory user names, detectors
other strings  detectors + credential detectors    untouched
=============  ==================================  ====================================

The input event is never modified: containers on the path to a changed string are
copied, everything else is shared with the input.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote

import orjson

from .detectors import CREDENTIAL_DETECTORS, DETECTOR_NAMES, REDACTED, CustomRule, Scanner

if TYPE_CHECKING:
    from oisp_sensor.config import RedactionConfig
    from oisp_sensor.decode.providers.registry import Provider

Mode = Literal["safe", "full", "minimal"]
MODES: tuple[str, ...] = ("safe", "full", "minimal")

# Keys whose values are message content: removed in `minimal`, scanned in `safe`, kept
# in `full`. Strings, lists and objects alike (tool `arguments` may be an object).
CONTENT_KEYS = frozenset(
    {
        "content",
        "text",
        "arguments",
        "result",
        "results",
        "prompt",
        "input",
        "inputs",
        "delta",
        "output",
        "outputs",
        "refusal",
        "system",
        "instructions",
        "query",
        "documents",
        "document",
        "contents",
        "parts",
        "completion",
        "suffix",
        "reasoning",
        "reasoning_content",
        "thinking",
        "transcript",
        "body",
        "request_body",
        "response_body",
        "stdout",
        "stderr",
    }
)
# Keys whose values are identifiers and metadata only: never scanned (speed, and no
# false positives on ids and hashes). Keys ending in _id or _hash are skipped too.
SKIP_KEYS = frozenset(
    {
        "id",
        "object",
        "type",
        "role",
        "model",
        "family",
        "request_type",
        "finish_reason",
        "stop_reason",
        "status",
        "method",
        "auth",
        "redaction",
        "usage",
        "cost",
        "token_estimate",
        "content_parts",
        "timestamp",
        "created",
        "encoding",
        "format",
        "tools",
        "confidence",
    }
)
_SKIP_SUFFIXES = ("_id", "_hash", "_ids")
URL_KEYS = frozenset(
    {"endpoint", "url", "uri", "target", "referer", "referrer", "origin", "base_url", "href", "location"}
)
PATH_KEYS = frozenset({"path", "file", "filename", "file_path", "cwd", "exe", "old_path", "new_path", "dir"})
HEADER_KEYS = frozenset({"headers", "request_headers", "response_headers", "http_headers", "trailers"})
ARGV_KEYS = frozenset({"cmdline", "args", "argv"})
ENV_KEYS = frozenset({"env", "environ", "environment"})
# Parents whose `path` is a URL path, not a file path.
_URL_PATH_PARENTS = frozenset({"http", "request", "web"})
# Never exported whatever the mode: only `auth` {type, key_prefix} describes the credential.
SENSITIVE_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "x-api-key",
        "api-key",
        "x-goog-api-key",
        "anthropic-api-key",
        "openai-api-key",
        "x-auth-token",
        "x-access-token",
        "x-amz-security-token",
        "cookie",
        "set-cookie",
    }
)
# Environment variables, query parameters and command-line flags whose value is a credential.
_CONTENT_CONTAINERS = frozenset({"messages", "choices"})

# Key classes, decided once per key name.
_SKIP, _CONTENT, _URL, _PATH, _HEADERS, _ARGV, _ENV, _OTHER = range(8)
_KEY_CLASS: dict[str, int] = {}
_KEY_CLASS_MAX = 8192


def _classify(key: str) -> int:
    """The class of a key name (memoised: data keys are a small, fixed vocabulary)."""
    if key in SKIP_KEYS or key.endswith(_SKIP_SUFFIXES):
        cls = _SKIP
    elif key in CONTENT_KEYS:
        cls = _CONTENT
    elif key in URL_KEYS:
        cls = _URL
    elif key in PATH_KEYS:
        cls = _PATH
    elif key in HEADER_KEYS:
        cls = _HEADERS
    elif key in ARGV_KEYS:
        cls = _ARGV
    elif key in ENV_KEYS:
        cls = _ENV
    else:
        cls = _OTHER
    if len(_KEY_CLASS) < _KEY_CLASS_MAX:
        _KEY_CLASS[key] = cls
    return cls


_SECRET_NAME_RE = re.compile(
    r"pass(?:wd|word|phrase)?|secret|token|api[_\-]?key|apikey|access[_\-]?key|private[_\-]?key|"
    r"credential|auth|cookie|session|signature|(?:^|[_\-])sig(?:$|[_\-])|(?:^|[_\-])key$|^key(?:$|[_\-])|dsn",
    re.IGNORECASE,
)
_SECRET_FLAG_RE = re.compile(r"--?[A-Za-z0-9_\-]*")
_CURL_USER_FLAGS = frozenset({"-u", "--user", "--proxy-user", "-U"})
_ARGV_CACHE_MAX = 4096
_STREAM_HOLD = 256  # characters of a streamed answer held back until more arrives
_STREAM_MAX_HELD = 65536  # a hit longer than this is released (redacted) in pieces
_STREAMS_MAX = 4096  # streams with held text (the oldest is dropped beyond)
_CLEAN_URLS_MAX = 4096  # URLs remembered clean, per mode


def sha256(text: str) -> str:
    """`sha256:<hex>` of a string's UTF-8 bytes: the form of every hash in OISP events."""
    return "sha256:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _json_text(value: object) -> str:
    """Canonical JSON of a non-string content value, for its length and hash."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:
        return repr(value)


def secret_name(name: str) -> bool:
    """Whether a variable, parameter or flag name says its value is a credential."""
    return _SECRET_NAME_RE.search(name) is not None


@dataclass(slots=True)
class ModeCounters:
    """What one mode did, for `status`, `/metrics` and the UI."""

    events: int = 0
    events_redacted: int = 0  # events with at least one replacement or removal
    items_redacted: int = 0  # replacements (secrets, personal data, credential fields)
    content_removed: int = 0  # content fields removed (minimal)
    kinds: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "events_redacted": self.events_redacted,
            "items_redacted": self.items_redacted,
            "content_removed": self.content_removed,
            "patterns": dict(self.kinds),
        }


_REMOVED: Any = object()


class _Pass:
    """One walk of one event in one mode: the scanners to use and what was done."""

    __slots__ = (
        "argv_cache",
        "clean_urls",
        "content",
        "content_changed",
        "count",
        "had_content",
        "kinds",
        "meta",
        "mode",
        "originals",
        "paths",
        "removed",
    )

    def __init__(
        self,
        mode: str,
        content: Scanner | None,
        meta: Scanner,
        paths: bool,
        argv_cache: dict[tuple[int, tuple[str, ...]], tuple[list[str], list[str]]],
    ) -> None:
        self.mode = mode
        self.content = content  # None: content is not scanned (full) or removed (minimal)
        self.meta = meta
        self.paths = paths
        self.argv_cache = argv_cache
        self.clean_urls: set[str] = set()  # URLs url() left unchanged with this `meta`
        self.count = 0
        self.removed = 0
        self.kinds: list[str] = []
        self.originals: list[str] = []
        self.had_content = False
        self.content_changed = False

    # ---- strings ---------------------------------------------------------------------

    def text(self, value: str, scanner: Scanner) -> str:
        new, kinds = scanner.scrub(value)
        if kinds:
            self.count += len(kinds)
            self.kinds.extend(kinds)
            self.originals.append(value)
        return new

    def url(self, value: str) -> str:
        """A URL or URL path: password, credential query parameters, then detectors."""
        if value in self.clean_urls:
            return value  # endpoints and paths repeat on every call
        original = value
        kinds: list[str] = []
        if "?" in value:
            base, _, query = value.partition("?")
            query, fragment_sep, fragment = query.partition("#")
            params = query.split("&")
            changed = False
            for i, param in enumerate(params):
                name, eq, val = param.partition("=")
                if eq and val and secret_name(name) and not val.startswith("[REDACTED"):
                    params[i] = f"{name}={REDACTED.format('secret')}"
                    kinds.append("secret")
                    changed = True
            if changed:
                value = base + "?" + "&".join(params) + fragment_sep + fragment
        new, found = self.meta.scrub(value)
        if not found and "%" in new:
            # percent-encoded personal data (jane%40example.com): exported decoded when
            # it had to be redacted, untouched otherwise
            decoded = unquote(new)
            if decoded != new:
                decoded_new, decoded_found = self.meta.scrub(decoded)
                if decoded_found:
                    new, found = decoded_new, decoded_found
        kinds.extend(found)
        if kinds:
            self.count += len(kinds)
            self.kinds.extend(kinds)
            self.originals.append(original)
        elif new is original:
            clean = self.clean_urls
            if len(clean) >= _CLEAN_URLS_MAX:
                clean.clear()
            clean.add(original)
        return new

    def argv(self, args: list[Any]) -> list[Any]:
        """Command-line arguments: secret-named flags' values, `-u user:pass`, detectors."""
        if not all(type(a) is str for a in args):
            return self.list_(args, "args", "")
        key = (id(self.meta), tuple(args))
        cached = self.argv_cache.get(key)
        if cached is None:
            cached = _scrub_argv(args, self.meta)
            if len(self.argv_cache) >= _ARGV_CACHE_MAX:
                self.argv_cache.clear()
            self.argv_cache[key] = cached
            new, kinds = cached
            if len(args) > 1 and new[0] is args[0] and not args[0].startswith("-"):
                # process.exec carries the arguments without argv[0] next to the command
                # line: the same result, when argv[0] (a program name) changed nothing.
                self.argv_cache[(key[0], key[1][1:])] = (new[1:], kinds)
        new, kinds = cached
        if kinds:
            self.count += len(kinds)
            self.kinds.extend(kinds)
            self.originals.append("\x00".join(args))
            return list(new)  # the cached list is never handed out
        return args

    def env(self, env: Any) -> Any:
        """Environment: secret-named variables replaced whole, other values scanned."""
        if isinstance(env, dict):
            out: dict[str, Any] | None = None
            for name, value in env.items():
                if type(value) is not str or not value:
                    continue
                if secret_name(str(name)):
                    new = REDACTED.format("secret")
                    self.count += 1
                    self.kinds.append("secret")
                    self.originals.append(value)
                else:
                    new = self.text(value, self.meta)
                if new is not value:
                    if out is None:
                        out = dict(env)
                    out[name] = new
            return env if out is None else out
        if isinstance(env, list):
            items: list[Any] | None = None
            for i, item in enumerate(env):
                if type(item) is not str or "=" not in item:
                    continue
                name, _, value = item.partition("=")
                if secret_name(name) and value:
                    new = f"{name}={REDACTED.format('secret')}"
                    self.count += 1
                    self.kinds.append("secret")
                    self.originals.append(item)
                else:
                    new = self.text(item, self.meta)
                if new is not item:
                    if items is None:
                        items = list(env)
                    items[i] = new
            return env if items is None else items
        return env

    def headers(self, headers: Any) -> Any:
        """Header maps, pair lists or `Name: value` lines: credentials never leave."""
        if isinstance(headers, dict):
            out: dict[str, Any] | None = None
            for name, value in headers.items():
                new = self._header_value(str(name), value)
                if new is not value:
                    if out is None:
                        out = dict(headers)
                    out[name] = new
            return headers if out is None else out
        if isinstance(headers, list):
            items: list[Any] | None = None
            for i, item in enumerate(headers):
                new_item: Any = item
                if isinstance(item, (list, tuple)) and len(item) == 2:
                    new_value = self._header_value(str(item[0]), item[1])
                    if new_value is not item[1]:
                        new_item = [item[0], new_value]
                elif type(item) is str and ":" in item:
                    name, _, value = item.partition(":")
                    new_value = self._header_value(name, value)
                    if new_value is not value:
                        new_item = f"{name}:{new_value}"
                if new_item is not item:
                    if items is None:
                        items = list(headers)
                    items[i] = new_item
            return headers if items is None else items
        return headers

    def _header_value(self, name: str, value: Any) -> Any:
        if type(value) is not str or not value:
            return value
        if name.strip().lower() in SENSITIVE_HEADERS:
            self.count += 1
            self.kinds.append("auth_header")
            self.originals.append(value)
            return REDACTED.format("auth_header")
        return self.text(value, self.meta)

    # ---- containers ------------------------------------------------------------------

    def value(self, value: Any, key: str, parent: str) -> Any:
        """A value found under `key` (in a dict whose own key was `parent`)."""
        cls = _KEY_CLASS.get(key)
        if cls is None:
            cls = _classify(key)
        if cls == _SKIP:
            return value
        kind = type(value)
        if kind is str:
            if cls == _CONTENT:
                return self.content_text(value)
            if cls == _URL or (cls == _PATH and parent in _URL_PATH_PARENTS):
                return self.url(value)
            if cls == _PATH:
                return self.text(value, self.meta) if self.paths else value
            if self.mode == "full":
                return value
            return self.text(value, self.meta)
        if kind is dict or kind is list:
            if cls == _CONTENT:
                return self.content_tree(value)
            if cls == _HEADERS:
                return self.headers(value)
            if cls == _ENV:
                return self.env(value)
            if cls == _ARGV and kind is list:
                return self.argv(value)
            if kind is dict:
                return self.dict_(value, key)
            return self.list_(value, key, parent)
        return value

    def content_text(self, value: str) -> str:
        self.had_content = True
        scanner = self.content
        if scanner is None:
            return value
        new, kinds = scanner.scrub(value)
        if kinds:
            self.count += len(kinds)
            self.kinds.extend(kinds)
            self.originals.append(value)
            self.content_changed = True
        return new

    def content_tree(self, value: Any) -> Any:
        """An object or list under a content key (tool arguments as an object, content
        parts, embedding inputs): every string in it is content, whatever its key."""
        self.had_content = True
        if self.content is None:
            return value  # full (minimal removes the whole tree in dict_)
        kind = type(value)
        if kind is str:
            return self.content_text(value)
        if kind is dict:
            out: dict[str, Any] | None = None
            for key, item in value.items():
                new = self.content_tree(item)
                if new is not item:
                    if out is None:
                        out = dict(value)
                    out[key] = new
            return value if out is None else out
        if kind is list:
            items: list[Any] | None = None
            for i, item in enumerate(value):
                new = self.content_tree(item)
                if new is not item:
                    if items is None:
                        items = list(value)
                    items[i] = new
            return value if items is None else items
        return value

    def _known_clean(self, value: str, cls: int) -> bool:
        """True when the scanner has already seen `value` and found nothing in it."""
        if cls == _CONTENT:
            self.had_content = True
            scanner = self.content
            if scanner is None:
                return True
        else:
            scanner = self.meta
        if len(value) < scanner.min_length:
            return True
        cached = scanner.cache.get(value)
        return cached is not None and cached[0] is None

    def dict_(self, obj: dict[str, Any], parent: str) -> dict[str, Any]:
        changes: dict[str, Any] | None = None
        mode = self.mode
        minimal = mode == "minimal"
        full = mode == "full"
        key_class = _KEY_CLASS
        # The usual cases are answered here without a call: strings the scanner has seen
        # clean (its cache), and plain objects and lists (walked directly).
        meta = self.meta
        meta_cache = meta.cache
        meta_min = meta.min_length
        content = self.content
        for key, value in obj.items():
            kind = type(value)
            if kind is not str and kind is not dict and kind is not list:
                continue  # numbers, booleans, None: nothing to redact
            cls = key_class.get(key)
            if cls is None:
                cls = _classify(key)
            if cls == _SKIP:
                continue
            if cls == _OTHER:
                if kind is str:
                    if full:
                        continue  # full: plain strings are kept
                    if len(value) < meta_min:
                        continue
                    cached = meta_cache.get(value)
                    if cached is not None and cached[0] is None:
                        continue
                    new: Any = self.text(value, meta)
                elif full and key in _CONTENT_CONTAINERS:
                    continue  # full: messages/choices hold only content
                elif kind is dict:
                    new = self.dict_(value, key)
                else:
                    new = self.list_(value, key, parent)
            elif cls == _CONTENT:
                if minimal:
                    new = _REMOVED
                elif kind is str:
                    self.had_content = True
                    if content is None or len(value) < content.min_length:
                        continue
                    cached = content.cache.get(value)
                    if cached is not None and cached[0] is None:
                        continue
                    new = self.content_text(value)
                else:
                    new = self.content_tree(value)
            elif (
                kind is str
                and value in self.clean_urls
                and (cls == _URL or (cls == _PATH and parent in _URL_PATH_PARENTS))
            ):
                continue  # a URL seen clean before (endpoints, paths)
            else:
                new = self.value(value, key, parent)
            if new is value:
                continue
            if changes is None:
                changes = {}
            changes[key] = new
        if changes is None:
            return obj
        out: dict[str, Any] = {}
        for key, value in obj.items():
            new = changes.get(key, value)
            if new is _REMOVED:
                text = value if isinstance(value, str) else _json_text(value)
                self.had_content = True
                self.removed += 1
                self.originals.append(text)
                out.setdefault(f"{key}_length", len(text))
                out.setdefault(f"{key}_hash", sha256(text))
            else:
                out[key] = new
                if (
                    self.mode == "safe"
                    and key in CONTENT_KEYS
                    and isinstance(value, str)
                    and new is not value
                    and f"{key}_hash" not in obj
                ):
                    out[f"{key}_hash"] = sha256(value)  # the original's hash, for correlation
        return out

    def list_(self, items: list[Any], key: str, parent: str) -> list[Any]:
        out: list[Any] | None = None
        # Lists of objects under a key of no special kind (messages, choices): walked
        # directly, without a call to `value` per item.
        cls = _KEY_CLASS.get(key)
        plain = (cls if cls is not None else _classify(key)) == _OTHER
        for i, item in enumerate(items):
            if item is None:
                continue
            new = self.dict_(item, key) if plain and type(item) is dict else self.value(item, key, parent)
            if new is not item:
                if out is None:
                    out = list(items)
                out[i] = new
        return items if out is None else out


def _scrub_argv(args: Sequence[str], scanner: Scanner) -> tuple[list[str], list[str]]:
    """Redacted copy of an argument vector, and the kinds replaced."""
    out = list(args)
    kinds: list[str] = []
    previous = ""
    for i, arg in enumerate(args):
        if previous and not arg.startswith("-") and arg:
            if previous in _CURL_USER_FLAGS and ":" in arg:
                user, _, _password = arg.partition(":")
                out[i] = f"{user}:{REDACTED.format('password')}"
                kinds.append("password")
                previous = ""
                continue
            if _SECRET_FLAG_RE.fullmatch(previous) and secret_name(previous.lstrip("-")):
                out[i] = REDACTED.format("secret")
                kinds.append("secret")
                previous = ""
                continue
        if arg.startswith("-") and "=" in arg:
            flag, _, value = arg.partition("=")
            if value and _SECRET_FLAG_RE.fullmatch(flag) and secret_name(flag.lstrip("-")):
                out[i] = f"{flag}={REDACTED.format('secret')}"
                kinds.append("secret")
                previous = ""
                continue
        new, found = scanner.scrub(arg)
        if found:
            out[i] = new
            kinds.extend(found)
        previous = arg if arg.startswith("-") and "=" not in arg else ""
    return out, kinds


class Redactor:
    """Applies a redaction mode to OISP events; built once from the config.

    `apply(event, mode)` returns the redacted event and never modifies its input, so
    the pipeline can call it once per distinct mode among its exporters (a per-exporter
    `redaction` override costs one pass per mode) and hand each exporter its version.
    """

    def __init__(
        self,
        mode: str = "safe",
        *,
        detectors: Mapping[str, bool] | Iterable[str] | None = None,
        custom_patterns: Sequence[CustomRule] = (),
        redact_paths: bool = False,
        key_prefixes: Iterable[str] | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown redaction mode {mode!r}")
        self.mode = mode
        if detectors is None:
            enabled = set(DETECTOR_NAMES)
        elif isinstance(detectors, Mapping):
            unknown = set(detectors) - set(DETECTOR_NAMES)
            if unknown:
                raise ValueError(f"unknown detector(s): {', '.join(sorted(unknown))}")
            enabled = {name for name in DETECTOR_NAMES if detectors.get(name, True)}
        else:
            enabled = set(detectors)
        if key_prefixes is None:
            key_prefixes = _registry_prefixes(None)
        prefixes = tuple(key_prefixes)
        self.detectors = frozenset(enabled)
        self.redact_paths = redact_paths
        self.custom_patterns = tuple(custom_patterns)
        # content: the switches; metadata: switches plus every credential detector;
        # full mode: credentials only, on metadata only.
        self._content = Scanner(enabled, prefixes, self.custom_patterns, user_paths=redact_paths)
        meta_enabled = enabled | CREDENTIAL_DETECTORS
        self._meta = (
            self._content
            if meta_enabled == enabled
            else Scanner(meta_enabled, prefixes, self.custom_patterns, user_paths=redact_paths)
        )
        self._credentials = Scanner(CREDENTIAL_DETECTORS, prefixes)
        self._argv_cache: dict[tuple[int, tuple[str, ...]], tuple[list[str], list[str]]] = {}
        self._clean_urls: dict[str, set[str]] = {m: set() for m in MODES}
        # (id(context), mode) -> (context, redacted, count, kinds, originals); the context
        # is kept referenced so its id cannot be reused while cached.
        self._process_cache: dict[tuple[int, str], tuple[Any, Any, int, list[str], list[str]]] = {}
        self.counters: dict[str, ModeCounters] = {m: ModeCounters() for m in MODES}
        # ai.streaming_chunk text held back per stream (see _stream_delta)
        self._streams: dict[str, dict[tuple[str, str], str]] = {}

    @classmethod
    def from_config(cls, config: RedactionConfig, providers: Iterable[Provider] | None = None) -> Redactor:
        """The redactor for `[redaction]`; `providers` (e.g. the pipeline's registry,
        with the user's extra providers) supplies the API key prefixes to detect."""
        switches = config.detectors.model_dump()
        custom = [CustomRule(p.name, p.compiled) for p in config.custom_patterns if p.enabled]
        return cls(
            config.mode,
            detectors={name: bool(switches.get(name, True)) for name in DETECTOR_NAMES},
            custom_patterns=custom,
            redact_paths=config.redact_paths,
            key_prefixes=_registry_prefixes(providers),
        )

    # ---- the API the pipeline calls ---------------------------------------------------

    def _process(self, walk: _Pass, process: dict[str, Any], mode: str) -> dict[str, Any]:
        """The process context, redacted once per context object and mode: every event of
        a process carries the same (never modified) dict, with its command line."""
        key = (id(process), mode)
        hit = self._process_cache.get(key)
        if hit is None or hit[0] is not process:
            before = (walk.count, len(walk.kinds), len(walk.originals))
            new = walk.dict_(process, "process")
            hit = (process, new, walk.count - before[0], walk.kinds[before[1] :], walk.originals[before[2] :])
            if len(self._process_cache) >= 4096:
                self._process_cache.clear()
            self._process_cache[key] = hit
            return new
        _, new, count, kinds, originals = hit
        walk.count += count
        walk.kinds.extend(kinds)
        walk.originals.extend(originals)
        return new

    def apply(self, event: dict[str, Any], mode: str | None = None) -> dict[str, Any]:
        """A redacted copy of `event` in `mode` (default: the configured mode).

        Sub-objects nothing was changed in are shared with `event`, which itself is
        never modified.
        """
        mode = self.mode if mode is None else mode
        if mode == "safe":
            walk = _Pass(mode, self._content, self._meta, True, self._argv_cache)
        elif mode == "minimal":
            walk = _Pass(mode, None, self._meta, True, self._argv_cache)
        elif mode == "full":
            walk = _Pass(mode, None, self._credentials, False, self._argv_cache)
        else:
            raise ValueError(f"unknown redaction mode {mode!r}")
        walk.paths = self.redact_paths and mode != "full"
        walk.clean_urls = self._clean_urls[mode]
        out = dict(event)
        process = event.get("process")
        if isinstance(process, dict):
            new_process = self._process(walk, process, mode)
            if new_process is not process:
                out["process"] = new_process
        web = event.get("web")
        if isinstance(web, dict):
            new_web = walk.dict_(web, "web")
            if new_web is not web:
                out["web"] = new_web
        data = event.get("data")
        if isinstance(data, dict):
            event_type = event.get("event_type")
            if event_type == "ai.streaming_chunk" and mode == "safe" and type(data.get("delta")) is str:
                data = dict(data)
                data["delta"] = self._stream_delta(data, mode)
            elif event_type == "ai.response" and self._streams:
                self._streams.pop(str(data.get("related_event_id")), None)
            new_data = walk.dict_(data, "data")
            changed = walk.count > 0 or walk.removed > 0
            if walk.had_content and mode != "full":
                if new_data is data:
                    new_data = dict(data)
                new_data["messages_redacted"] = walk.content_changed or walk.removed > 0
            if changed:
                if new_data is data:
                    new_data = dict(data)
                block: dict[str, Any] = {
                    "original_hash": sha256("\x1e".join(walk.originals)),
                    "patterns_found": sorted(set(walk.kinds)),
                    "redaction_count": walk.count + walk.removed,
                    "mode": mode,
                }
                if walk.removed:
                    block["content_removed"] = walk.removed
                new_data["redaction"] = block
            out["data"] = new_data
        counters = self.counters[mode]
        counters.events += 1
        if walk.count or walk.removed:
            counters.events_redacted += 1
            counters.items_redacted += walk.count
            counters.content_removed += walk.removed
            kinds = counters.kinds
            for kind in walk.kinds:
                kinds[kind] = kinds.get(kind, 0) + 1
        return out

    def _stream_delta(self, data: dict[str, Any], mode: str) -> str:
        """The part of a streamed delta that can be released in `safe` mode.

        A model streams its answer a few characters per chunk, so a secret it writes is
        spread over many ai.streaming_chunk events, none of which holds enough of it to
        be recognised. So the last `_STREAM_HOLD` characters of each stream (and any
        detector hit still open at that point) are held back and released, scanned,
        with the next chunk; the chunk with a finish_reason releases the rest. Held
        text of a stream that never finishes is never exported as chunks (the
        ai.response carries the whole answer, redacted).
        """
        streams = self._streams.get(str(data.get("related_event_id")))
        if streams is None:
            if len(self._streams) >= _STREAMS_MAX:
                self._streams.pop(next(iter(self._streams)))
            streams = self._streams[str(data.get("related_event_id"))] = {}
        key = (mode, str(data.get("delta_type")))
        text = streams.pop(key, "") + data["delta"]
        if data.get("finish_reason") is not None:
            # The stream ends here: release what every delta type still holds. The
            # finishing chunk is often an empty "none" delta (OpenAI, Mistral) while the
            # answer's tail is held as "text"; it then carries that tail, and its type.
            held = [k for k in streams if k[0] == mode]
            if len(held) == 1 and key[1] == "none" and not data["delta"]:
                data["delta_type"] = held[0][1]
            return "".join(streams.pop(k) for k in held) + text
        cut = len(text) - _STREAM_HOLD
        if cut <= 0:
            streams[key] = text
            return ""
        for start, end, _kind in sorted(self._content.find(text), reverse=True):
            if start < cut < end and len(text) - start <= _STREAM_MAX_HELD:
                cut = start  # never release part of a (possibly still growing) secret
        streams[key] = text[cut:]
        return text[:cut]

    def scrub_text(self, text: str, mode: str | None = None) -> str:
        """One string as `mode` would export it as content (for ad-hoc strings, e.g. logs)."""
        mode = self.mode if mode is None else mode
        if mode == "full":
            return text
        if mode == "minimal":
            return f"[REDACTED:content length={len(text)} {sha256(text)}]"
        return self._content.scrub(text)[0]

    def stats(self) -> dict[str, Any]:
        """Counters per mode used, plus totals, for status and metrics."""
        used = {m: c.as_dict() for m, c in self.counters.items() if c.events}
        return {
            "mode": self.mode,
            "events_redacted": self.events_redacted,
            "items_redacted": self.items_redacted,
            "by_mode": used,
        }

    @property
    def events_redacted(self) -> int:
        """Events changed, summed over modes (an event applied in two modes counts twice)."""
        return sum(c.events_redacted for c in self.counters.values())

    @property
    def items_redacted(self) -> int:
        return sum(c.items_redacted for c in self.counters.values())


def _registry_prefixes(providers: Iterable[Provider] | None) -> tuple[str, ...]:
    """API key prefixes of every provider (the built-in registry when none given)."""
    if providers is None:
        from oisp_sensor.decode.providers.registry import builtin_providers

        providers = builtin_providers()
    return tuple(sorted({p for provider in providers for p in provider.key_prefixes}))
