"""Web context of AI calls made from a browser page: the OISP `web` object.

Why: when the AI call comes from a browser, the process is just "chromium"; what the
user was doing is in the request's Origin and Referer headers (the page that made the
call). The table of known AI web apps is data (`web_apps.toml`, parsed once).

`web` = {origin, referer, web_app_id, web_app_name, web_app_type[, fetch_site]}:

* origin: the Origin header (scheme://host[:port]), or the Referer's origin when the
  browser sent no Origin;
* referer: the Referer without its query string and fragment (they carry search
  terms and tokens; the path is kept, as in the seed's example "/c/abc123");
* web_app_id / web_app_name: the known AI web app the page belongs to (matched on the
  origin's host, and for apps that are a part of a shared site, on the Referer's path),
  else "unknown" / "Unknown";
* web_app_type:
  - "direct": a known AI web app calling its own vendor's API (ChatGPT -> OpenAI,
    claude.ai -> Anthropic), or its own site (same-origin or same-site per
    Sec-Fetch-Site, or the request's host is the page's host);
  - "third_party": a known AI web app calling another vendor's API (Poe or LMArena
    calling Anthropic);
  - "embedded": a page that is not a known AI web app calling an AI API: AI embedded in
    some other site or a local page (a SaaS feature, a developer's localhost app);
* fetch_site: the Sec-Fetch-Site header when sent (same-origin, same-site,
  cross-site, none).

A request counts as made from a page when it carries Origin or Referer. The `web`
context of an ai.request is remembered by `CallContexts` so that the call's later
events (ai.response, ai.streaming_chunk, ai.embedding, agent.tool_call/tool_result)
carry it too.
"""

from __future__ import annotations

import functools
import importlib.resources
import re
import tomllib
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from oisp_sensor.decode.providers.registry import split_host

from .apps import glob_regex

UNKNOWN_WEB_APP_ID = "unknown"
_ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_KEYS = frozenset({"id", "name", "hosts", "paths", "providers"})
_SAME_SITE = frozenset({"same-origin", "same-site"})
_MAX_CONTEXTS = 4096
_MAX_CALLS = 8192


@dataclass(frozen=True, slots=True)
class WebApp:
    """One AI web application: where its pages are, and whose API is its own."""

    id: str
    name: str
    hosts: tuple[str, ...]
    paths: tuple[str, ...] = ()
    providers: frozenset[str] = frozenset()

    def covers(self, path: str | None) -> bool:
        """True when the page path is part of this app (always, for a whole-host app)."""
        if not self.paths:
            return True
        if not path:
            return False
        return any(path == p or path.startswith(p.rstrip("/") + "/") for p in self.paths)


def web_app_from_mapping(entry: Mapping[str, Any]) -> WebApp:
    """Build a WebApp from one TOML table, validating it (ValueError names the app and key)."""
    app_id = entry.get("id")
    if not isinstance(app_id, str) or not _ID_RE.match(app_id):
        raise ValueError(f"web app id must be a lowercase key, got {app_id!r}")
    unknown = sorted(set(entry) - _KEYS)
    if unknown:
        raise ValueError(f"web app {app_id}: unknown key {unknown[0]!r}")

    def strings(key: str) -> tuple[str, ...]:
        values = entry.get(key, [])
        if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
            raise ValueError(f"web app {app_id}: {key} must be a list of non-empty strings")
        return tuple(values)

    name = entry.get("name", app_id)
    if not isinstance(name, str) or not name:
        raise ValueError(f"web app {app_id}: name must be a non-empty string")
    hosts = tuple(h.lower() for h in strings("hosts"))
    if not hosts:
        raise ValueError(f"web app {app_id}: hosts must not be empty")
    paths = strings("paths")
    if any(not p.startswith("/") for p in paths):
        raise ValueError(f"web app {app_id}: paths must start with '/'")
    return WebApp(app_id, name, hosts, paths, frozenset(strings("providers")))


def parse_web_apps(text: str) -> tuple[WebApp, ...]:
    """Parse a web apps TOML document (see web_apps.toml for the keys)."""
    tables = tomllib.loads(text).get("web_app", [])
    if not isinstance(tables, list):
        raise ValueError("web apps file: expected [[web_app]] tables")
    apps = tuple(web_app_from_mapping(t) for t in tables)
    if len({a.id for a in apps}) != len(apps):
        raise ValueError("duplicate web app id")
    return apps


@functools.cache
def builtin_web_apps() -> tuple[WebApp, ...]:
    """The web apps shipped in the package (read and parsed once per process)."""
    return parse_web_apps(importlib.resources.files(__package__).joinpath("web_apps.toml").read_text("utf-8"))


def strip_url(url: str) -> str:
    """A URL without query string and fragment."""
    return url.partition("#")[0].partition("?")[0]


def _host_and_path(url: str) -> tuple[str, str, str]:
    """(origin, host, path) of a URL; empty strings for what it does not have."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "", "", ""
    if not parts.scheme or not host:
        return "", "", ""
    netloc = f"[{host}]" if ":" in host else host
    origin = f"{parts.scheme.lower()}://{netloc}" + (f":{port}" if port is not None else "")
    return origin, host.rstrip("."), parts.path or "/"


class WebApps:
    """Page host (+ path) -> known AI web app: exact hosts in a dict, globs in one regex."""

    def __init__(self, apps: Iterable[WebApp]) -> None:
        self.apps = tuple(apps)
        self._exact: dict[str, list[WebApp]] = {}
        globs: list[tuple[str, WebApp]] = []
        for app in self.apps:
            for host in app.hosts:
                if "*" in host:
                    globs.append((host, app))
                else:
                    self._exact.setdefault(host.removeprefix("www."), []).append(app)
        for candidates in self._exact.values():
            candidates.sort(key=lambda a: not a.paths)  # the part of a site before the whole site
        self._globs = [app for _, app in globs]
        source = "|".join(f"(?P<g{i}>{glob_regex(host)})" for i, (host, _) in enumerate(globs))
        self._glob_re = re.compile(source, re.IGNORECASE | re.DOTALL) if source else None

    @classmethod
    def default(cls) -> WebApps:
        return cls(builtin_web_apps())

    def __len__(self) -> int:
        return len(self.apps)

    def find(self, host: str, path: str | None = None) -> WebApp | None:
        """The web app whose pages are at `host` (and `path`, for apps that are part of a site)."""
        host = host.lower().rstrip(".")
        for app in self._exact.get(host.removeprefix("www."), ()):
            if app.covers(path):
                return app
        if self._glob_re is not None:
            match = self._glob_re.fullmatch(host)
            if match is not None and match.lastgroup is not None:
                app = self._globs[int(match.lastgroup[1:])]
                if app.covers(path):
                    return app
        return None

    def context(
        self,
        origin: str | None,
        referer: str | None,
        provider_id: str | None = None,
        request_host: str | None = None,
        fetch_site: str | None = None,
    ) -> dict[str, Any] | None:
        """The `web` object for a request with these headers, or None when it has neither
        Origin nor Referer (not made from a page). See the module docstring."""
        if not origin and not referer:
            return None
        referer = strip_url(referer) if referer else None
        ref_origin, ref_host, ref_path = _host_and_path(referer) if referer else ("", "", "")
        page_origin, host = "", ""
        if origin and origin != "null":
            page_origin, host, _ = _host_and_path(origin)
        if not host:
            page_origin, host = ref_origin, ref_host
        page_origin = page_origin or origin or ""
        path = ref_path if ref_host and ref_host == host else None
        app = self.find(host, path) if host else None
        if app is None:
            kind = "embedded"
        elif (provider_id is not None and provider_id in app.providers) or (
            fetch_site in _SAME_SITE or (request_host is not None and request_host == host)
        ):
            kind = "direct"
        else:
            kind = "third_party"
        web: dict[str, Any] = {"origin": page_origin}
        if referer:
            web["referer"] = referer
        web["web_app_id"] = app.id if app is not None else UNKNOWN_WEB_APP_ID
        web["web_app_name"] = app.name if app is not None else "Unknown"
        web["web_app_type"] = kind
        if fetch_site:
            web["fetch_site"] = fetch_site
        return web


class CallContexts:
    """What later events of an AI call need from its ai.request: the host it went to and
    its web context, remembered by the request's event id (bounded: oldest forgotten).

    Why here and not in the decoder: the response, chunk, embedding and tool events only
    carry `related_event_id` / `request_event_id`; the Origin, Referer and Host headers
    are on the request alone.
    """

    def __init__(self, web_apps: WebApps, capacity: int = _MAX_CALLS) -> None:
        self.web_apps = web_apps
        self.capacity = capacity
        # OrderedDict: evicting the oldest of a plain dict (next(iter(d))) gets slower and
        # slower as deleted slots pile up at its front.
        self._calls: OrderedDict[str, tuple[str | None, dict[str, Any] | None]] = OrderedDict()
        self._contexts: dict[tuple[Any, ...], dict[str, Any] | None] = {}

    def lookup(
        self, event_type: str, event_id: str, data: dict[str, Any]
    ) -> tuple[str | None, dict[str, Any] | None]:
        """(host without port, web context or None) of the call an AI or agent event belongs to."""
        if event_type != "ai.request":
            key = data.get("request_event_id") or data.get("related_event_id")
            return self._calls.get(key, (None, None)) if isinstance(key, str) else (None, None)
        http = data.get("http")
        if not isinstance(http, dict):
            return None, None
        raw_host = http.get("host")
        host = (split_host(raw_host)[0] or None) if isinstance(raw_host, str) else None
        origin, referer = http.get("origin"), http.get("referer")
        web = None
        if origin or referer:
            provider = data.get("provider")
            provider_id = provider.get("id") if isinstance(provider, dict) else None
            fetch_site = http.get("sec_fetch_site")
            key = (origin, referer, fetch_site, provider_id, host)
            if key in self._contexts:
                web = self._contexts[key]
            else:
                web = self.web_apps.context(origin, referer, provider_id, host, fetch_site)
                if len(self._contexts) >= _MAX_CONTEXTS:
                    self._contexts.clear()
                self._contexts[key] = web
        calls = self._calls
        if len(calls) >= self.capacity:
            calls.popitem(last=False)
        calls[event_id] = (host, web)
        return host, web
