"""Which AI provider a request goes to, from its Host header.

The provider table is data (`providers.toml`, parsed once with tomllib) so adding a
provider never touches code. Lookups sit on the hot path of every captured request
(most of which are not AI traffic at all), so the registry answers from plain dicts,
one precompiled regex for all host globs, and a small cache keyed by the raw Host
value.
"""

from __future__ import annotations

import functools
import importlib.resources
import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

UNKNOWN_PROVIDER_ID = "unknown"

_ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "::1", "0.0.0.0"})
_CACHE_MAX = 4096
# A key shorter than this gets no key_prefix at all: four characters of a short secret
# are too large a share of it.
_MIN_KEY_LEN_FOR_PREFIX = 16


@dataclass(frozen=True, slots=True)
class Provider:
    """One AI provider: how to recognise its traffic and how to read it."""

    id: str
    name: str
    api_format: str = "openai"
    domains: tuple[str, ...] = ()
    domain_patterns: tuple[str, ...] = ()
    default_ports: tuple[int, ...] = ()
    key_prefixes: tuple[str, ...] = ()
    strict: bool = False  # host also serves non-AI traffic: require an AI-shaped path


UNKNOWN_PROVIDER = Provider(id=UNKNOWN_PROVIDER_ID, name="Unknown", api_format="unknown", strict=True)


@dataclass(frozen=True, slots=True)
class HostMatch:
    """The answer to a Host lookup.

    `via` says how strong the evidence is: "domain", "pattern" and "extra" (from the
    user's config) name the provider outright; "port" (a local model server's default
    port) is only a hint, so `strict` is set and the caller must also see an AI-shaped
    path.
    """

    provider: Provider
    host: str  # lower case, no port, no trailing dot, no IPv6 brackets
    port: int | None
    via: str  # domain | pattern | port | extra
    strict: bool


def split_host(value: str) -> tuple[str, int | None]:
    """Normalise a Host header value into (host, port): lower case, no trailing dot.

    Handles "name", "name:port", "[v6]:port" and bare IPv6 literals; a non-numeric
    port is treated as part of the name (and so matches nothing).
    """
    value = value.strip().lower()
    port: int | None = None
    if value.startswith("["):
        end = value.find("]")
        if end > 0:
            rest = value[end + 1 :]
            value = value[1:end]
            if rest.startswith(":") and rest[1:].isdigit():
                port = int(rest[1:])
        return value, port
    if value.count(":") == 1:
        name, _, port_text = value.partition(":")
        if port_text.isdigit():
            value, port = name, int(port_text)
    return value.rstrip("."), port


def is_local_host(host: str) -> bool:
    """True for loopback names and addresses (where local model servers listen)."""
    return host in _LOCAL_NAMES or host.startswith("127.")


def _glob_to_regex(pattern: str) -> str:
    """Host glob to regex source: "*" is one or more characters within a single label."""
    return "".join("[^.]+" if part == "*" else re.escape(part) for part in re.split(r"(\*)", pattern))


def _provider_from_mapping(entry: Mapping[str, Any]) -> Provider:
    """Build a Provider from one TOML table (or a config mapping), validating it."""
    pid = entry.get("id")
    if not isinstance(pid, str) or not _ID_RE.match(pid):
        raise ValueError(f"provider id must be a lowercase key, got {pid!r}")
    name = entry.get("name", pid)
    api_format = entry.get("api_format", "openai")
    if not isinstance(name, str) or not isinstance(api_format, str):
        raise ValueError(f"provider {pid}: name and api_format must be strings")

    def strings(key: str) -> tuple[str, ...]:
        values = entry.get(key, [])
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise ValueError(f"provider {pid}: {key} must be a list of strings")
        return tuple(values)

    ports = entry.get("ports", [])
    if not isinstance(ports, list) or not all(isinstance(p, int) and 0 < p < 65536 for p in ports):
        raise ValueError(f"provider {pid}: ports must be a list of port numbers")
    strict = entry.get("strict", False)
    if not isinstance(strict, bool):
        raise ValueError(f"provider {pid}: strict must be true or false")
    return Provider(
        id=pid,
        name=name,
        api_format=api_format,
        domains=tuple(d.lower() for d in strings("domains")),
        domain_patterns=tuple(p.lower() for p in strings("patterns")),
        default_ports=tuple(ports),
        key_prefixes=strings("key_prefixes"),
        strict=strict,
    )


def parse_providers(text: str) -> tuple[Provider, ...]:
    """Parse a providers TOML document (see providers.toml for the keys)."""
    doc = tomllib.loads(text)
    tables = doc.get("provider", [])
    if not isinstance(tables, list):
        raise ValueError("providers file: expected [[provider]] tables")
    return tuple(_provider_from_mapping(t) for t in tables)


@functools.cache
def builtin_providers() -> tuple[Provider, ...]:
    """The providers shipped in the package (read and parsed once per process)."""
    text = importlib.resources.files(__package__).joinpath("providers.toml").read_text("utf-8")
    return parse_providers(text)


class ProviderRegistry:
    """Host -> provider lookup over the built-in table plus the user's `extra_hosts`.

    Lookup order: user extra hosts (host:port, then host, then their globs), built-in
    exact domains, built-in globs, then local-server default ports.
    """

    def __init__(self, providers: Iterable[Provider]) -> None:
        self._by_id: dict[str, Provider] = {}
        self._exact: dict[str, Provider] = {}
        self._patterns: list[tuple[str, Provider]] = []
        self._ports: dict[int, Provider] = {}
        self._extra_exact: dict[str, Provider] = {}  # "host" or "host:port"
        self._extra_patterns: list[tuple[str, Provider]] = []
        self._pattern_re: re.Pattern[str] | None = None
        self._extra_pattern_re: re.Pattern[str] | None = None
        self._cache: dict[str, HostMatch | None] = {}
        self._prefixes: tuple[str, ...] = ()
        for provider in providers:
            self._add_builtin(provider)
        self._rebuild()

    @classmethod
    def default(cls, extra_hosts: Mapping[str, str | Mapping[str, Any]] | None = None) -> ProviderRegistry:
        """The built-in registry, extended with the config's `extra_hosts` if given."""
        registry = cls(builtin_providers())
        if extra_hosts:
            registry.extend(extra_hosts)
        return registry

    # ---- building -------------------------------------------------------------------------

    def _add_builtin(self, provider: Provider) -> None:
        if provider.id in self._by_id:
            raise ValueError(f"duplicate provider id {provider.id!r}")
        self._by_id[provider.id] = provider
        for domain in provider.domains:
            if domain in self._exact:
                raise ValueError(f"domain {domain!r} claimed by {self._exact[domain].id} and {provider.id}")
            self._exact[domain] = provider
        for pattern in provider.domain_patterns:
            self._patterns.append((pattern, provider))
        for port in provider.default_ports:
            if port in self._ports:
                raise ValueError(f"port {port} claimed by {self._ports[port].id} and {provider.id}")
            self._ports[port] = provider

    @staticmethod
    def _compile(patterns: list[tuple[str, Provider]]) -> re.Pattern[str] | None:
        """One alternation for all globs; the named group that matched gives the provider."""
        if not patterns:
            return None
        source = "|".join(f"(?P<p{i}>{_glob_to_regex(p)})" for i, (p, _) in enumerate(patterns))
        return re.compile(source)

    def _rebuild(self) -> None:
        self._pattern_re = self._compile(self._patterns)
        self._extra_pattern_re = self._compile(self._extra_patterns)
        prefixes = {p for provider in self._by_id.values() for p in provider.key_prefixes}
        self._prefixes = tuple(sorted(prefixes, key=lambda p: (-len(p), p)))
        self._cache.clear()

    def add_host(self, host: str, provider: str | Provider | Mapping[str, Any]) -> Provider:
        """Map a host ("name", "name:port" or a glob) to a provider id or a new provider.

        A new provider (a Provider or a mapping with id, name, api_format, key_prefixes,
        strict) is registered under its id; an id that is already known must name it.
        """
        if isinstance(provider, str):
            target = self._by_id.get(provider)
            if target is None:
                raise ValueError(f"extra host {host!r}: unknown provider id {provider!r}")
        elif isinstance(provider, Provider):
            target = self._register_new(provider)
        elif set(provider) == {"id"} and isinstance(provider.get("id"), str):
            return self.add_host(host, provider["id"])
        else:
            target = self._register_new(_provider_from_mapping(provider))
        key = host.strip().lower().rstrip(".")
        if not key:
            raise ValueError("extra host: empty host name")
        if "*" in key:
            self._extra_patterns.append((key, target))
        else:
            name, port = split_host(key)
            self._extra_exact[name if port is None else f"{name}:{port}"] = target
        self._rebuild()
        return target

    def _register_new(self, provider: Provider) -> Provider:
        known = self._by_id.get(provider.id)
        if known is not None and known != provider:
            raise ValueError(f"provider id {provider.id!r} is already defined; map the host to its id")
        self._by_id[provider.id] = provider
        return provider

    def extend(self, extra_hosts: Mapping[str, str | Mapping[str, Any]]) -> None:
        """Apply the config's `extra_hosts` table (host -> provider id or provider table)."""
        for host, provider in extra_hosts.items():
            self.add_host(host, provider)

    # ---- queries --------------------------------------------------------------------------

    def get(self, provider_id: str) -> Provider | None:
        return self._by_id.get(provider_id)

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[Provider]:
        return iter(self._by_id.values())

    def lookup(self, host_header: str) -> HostMatch | None:
        """Provider for a Host header value (port stripped, case-insensitive), or None."""
        cache = self._cache
        try:
            return cache[host_header]
        except KeyError:
            pass
        match = self._lookup(host_header)
        if len(cache) >= _CACHE_MAX:
            cache.clear()  # system-wide capture sees unbounded host names: stay bounded
        cache[host_header] = match
        return match

    def _lookup(self, host_header: str) -> HostMatch | None:
        host, port = split_host(host_header)
        if not host:
            return None
        if self._extra_exact:
            provider = None
            if port is not None:
                provider = self._extra_exact.get(f"{host}:{port}")
            if provider is None:
                provider = self._extra_exact.get(host)
            if provider is not None:
                return HostMatch(provider, host, port, "extra", provider.strict)
        if self._extra_pattern_re is not None:
            m = self._extra_pattern_re.fullmatch(host)
            if m is not None and m.lastgroup is not None:
                provider = self._extra_patterns[int(m.lastgroup[1:])][1]
                return HostMatch(provider, host, port, "extra", provider.strict)
        provider = self._exact.get(host)
        if provider is not None:
            return HostMatch(provider, host, port, "domain", provider.strict)
        if self._pattern_re is not None:
            m = self._pattern_re.fullmatch(host)
            if m is not None and m.lastgroup is not None:
                provider = self._patterns[int(m.lastgroup[1:])][1]
                return HostMatch(provider, host, port, "pattern", provider.strict)
        if port is not None:
            provider = self._ports.get(port)
            if provider is not None:
                return HostMatch(provider, host, port, "port", True)
        return None

    def key_prefix(self, key: str, provider: Provider | None = None) -> str | None:
        """The shareable part of an API key: a documented prefix, else its first 4 chars.

        The provider's own prefixes are tried first (most specific), then every known
        prefix. Never returns more than a documented prefix or 4 characters, and nothing
        at all for keys too short for even that to be safe.
        """
        key = key.strip()
        if len(key) < _MIN_KEY_LEN_FOR_PREFIX:
            return None
        if provider is not None and provider.key_prefixes:
            own = max((p for p in provider.key_prefixes if key.startswith(p)), key=len, default=None)
            if own is not None:
                return own
        for prefix in self._prefixes:
            if key.startswith(prefix):
                return prefix
        return key[:4]
