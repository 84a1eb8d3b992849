"""Which AI application a process belongs to: the OISP `app` context of every event.

Why: a process is "node" or "python3" to the kernel; users want to know that it is
Claude Code, Aider or a Jupyter kernel, and whether that app talks only to the AI
services it is expected to. The table of known apps is data (`apps.toml`, parsed once)
plus the user's `[[apps.extra]]` entries, which come first and replace built-ins of the
same id.

`app` = {id, name, tier, category, via[, ancestor_pid][, profile_violation, unexpected]}:

* tier (the Event Schema seed's): "unknown" (no entry matched; id "unknown"),
  "identified" (an entry matched), "profiled" (the entry also declares the providers
  and hosts the app is expected to call);
* via: the rule kind that identified the process: "exe", "script", "module",
  "cmdline", or "parent" when it was attributed through an ancestor (then
  `ancestor_pid` is the process the app was identified on);
* profile_violation / unexpected: added to an AI event of a profiled app whose
  provider and host are both outside the profile (see `AppMatcher.check_profile`).

Cost: every event needs its app, so lookups are a dict get plus an identity check of
the process's `ProcessInfo` (a new object means a new image: exec). Rules run once per
distinct image (exe, cmdline), all globs of a kind compiled into one regex at load.
"""

from __future__ import annotations

import functools
import importlib.resources
import os
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from oisp_sensor.decode.providers.registry import split_host

from .process import ProcessInfo

if TYPE_CHECKING:
    from oisp_sensor.config import AppsConfig

UNKNOWN_APP_ID = "unknown"
#: The context of a process no entry matched (shared: never modify it).
UNKNOWN_APP: dict[str, Any] = {
    "id": UNKNOWN_APP_ID,
    "name": "Unknown",
    "tier": "unknown",
    "category": "unknown",
}

#: Categories whose child processes are not attributed to them by default: what runs
#: in an editor's or terminal's shell is the user's own program.
NO_CHILDREN_CATEGORIES = frozenset({"ide", "terminal"})
#: Rule kinds, in the order `via` reports them when one entry matches several ways.
RULE_KINDS = ("exe", "script", "module", "cmdline")

_ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_CATEGORY_RE = re.compile(r"^[a-z][a-z0-9-]*$")
_KEYS = frozenset({"id", "name", "category", "parent", "children", "expected_providers", "expected_hosts",
                   *RULE_KINDS})  # fmt: skip
# Programs that run a script given as their first non-option argument.
_INTERPRETER_RE = re.compile(r"^(?:python[0-9.]*|pypy[0-9.]*|node|nodejs|bun|deno|ruby[0-9.]*|perl[0-9.]*)$")
_OPTIONS_WITH_VALUE = frozenset(
    {
        "-W", "-X", "--check-hash-based-pycs",  # python
        "-r", "--require", "--import", "--loader", "--experimental-loader", "--env-file", "-C",
        "--conditions", "--title", "--inspect-port",  # node
    }
)  # fmt: skip
_NO_SCRIPT_OPTIONS = frozenset({"-c", "-e", "--eval", "-p", "--print"})
_MAX_DEPTH = 16  # ancestors walked for inheritance (also bounds a pid-reuse cycle)
_MAX_PIDS = 16384
_MAX_IMAGES = 8192
_MAX_VERDICTS = 4096


@dataclass(frozen=True, slots=True)
class AppEntry:
    """One known application and the rules that recognise its processes."""

    id: str
    name: str
    category: str
    exe: tuple[str, ...] = ()
    script: tuple[str, ...] = ()
    module: tuple[str, ...] = ()
    cmdline: tuple[str, ...] = ()
    parent: tuple[str, ...] = ()
    children: bool = True
    expected_providers: tuple[str, ...] | None = None
    expected_hosts: tuple[str, ...] | None = None
    source: str = "builtin"  # builtin | config

    @property
    def profiled(self) -> bool:
        return self.expected_providers is not None or self.expected_hosts is not None

    @property
    def tier(self) -> str:
        return "profiled" if self.profiled else "identified"

    @property
    def has_own_rules(self) -> bool:
        return bool(self.exe or self.script or self.module or self.cmdline)

    def context(self, via: str) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "tier": self.tier, "category": self.category, "via": via}


def entry_from_mapping(entry: Mapping[str, Any], source: str = "builtin") -> AppEntry:
    """Build an AppEntry from one TOML table or config mapping, validating it.

    Raises ValueError with a message naming the app and the key.
    """
    app_id = entry.get("id")
    if not isinstance(app_id, str) or not _ID_RE.match(app_id):
        raise ValueError(f"app id must be a lowercase key, got {app_id!r}")
    if app_id == UNKNOWN_APP_ID:
        raise ValueError(f"app id {UNKNOWN_APP_ID!r} is reserved for processes no app matched")
    unknown = sorted(set(entry) - _KEYS)
    if unknown:
        raise ValueError(f"app {app_id}: unknown key {unknown[0]!r}")
    name = entry.get("name", app_id)
    category = entry.get("category", "other")
    if not isinstance(name, str) or not name:
        raise ValueError(f"app {app_id}: name must be a non-empty string")
    if not isinstance(category, str) or not _CATEGORY_RE.match(category):
        raise ValueError(f"app {app_id}: category must be a lowercase word, got {category!r}")

    def strings(key: str) -> tuple[str, ...] | None:
        values = entry.get(key)
        if values is None:
            return None
        if not isinstance(values, list | tuple) or not all(isinstance(v, str) and v for v in values):
            raise ValueError(f"app {app_id}: {key} must be a list of non-empty strings")
        return tuple(values)

    rules = {kind: strings(kind) or () for kind in (*RULE_KINDS, "parent")}
    for i, pattern in enumerate(rules["cmdline"]):
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"app {app_id}: cmdline[{i}] is not a valid regular expression: {exc}") from None
    if not any(rules.values()):
        raise ValueError(f"app {app_id}: needs at least one of exe, script, module, cmdline, parent")
    children = entry.get("children")
    if children is None:
        children = category not in NO_CHILDREN_CATEGORIES
    elif not isinstance(children, bool):
        raise ValueError(f"app {app_id}: children must be true or false")
    providers = strings("expected_providers")
    hosts = strings("expected_hosts")
    return AppEntry(
        id=app_id,
        name=name,
        category=category,
        exe=rules["exe"],
        script=rules["script"],
        module=rules["module"],
        cmdline=rules["cmdline"],
        parent=rules["parent"],
        children=children,
        expected_providers=providers,
        expected_hosts=tuple(h.lower() for h in hosts) if hosts is not None else None,
        source=source,
    )


def parse_apps(text: str, source: str = "builtin") -> tuple[AppEntry, ...]:
    """Parse an apps TOML document (see apps.toml for the keys)."""
    tables = tomllib.loads(text).get("app", [])
    if not isinstance(tables, list):
        raise ValueError("apps file: expected [[app]] tables")
    entries = tuple(entry_from_mapping(t, source) for t in tables)
    seen: set[str] = set()
    for entry in entries:
        if entry.id in seen:
            raise ValueError(f"duplicate app id {entry.id!r}")
        seen.add(entry.id)
    return entries


@functools.cache
def builtin_apps() -> tuple[AppEntry, ...]:
    """The apps shipped in the package (read and parsed once per process)."""
    return parse_apps(importlib.resources.files(__package__).joinpath("apps.toml").read_text("utf-8"))


def merge_entries(extra: Iterable[AppEntry], builtin: Iterable[AppEntry] = ()) -> list[AppEntry]:
    """User entries first (they win), then the built-ins whose ids they do not replace."""
    first = list(extra)
    ids = {e.id for e in first}
    if len(ids) != len(first):
        raise ValueError("duplicate app id among the extra apps")
    return first + [e for e in builtin if e.id not in ids]


def glob_regex(glob: str) -> str:
    """Regex source for a glob: "*" any run of characters ("/" and "." included), "?" one, [..] a class.

    Hand-written rather than fnmatch.translate, whose output has its own named groups
    (which the combined alternations below could not hold twice).
    """
    out: list[str] = []
    i = 0
    while i < len(glob):
        char = glob[i]
        if char == "*":
            while i + 1 < len(glob) and glob[i + 1] == "*":
                i += 1
            out.append(".*")
        elif char == "?":
            out.append(".")
        elif char == "[" and (end := glob.find("]", i + 2)) > 0:
            body = glob[i + 1 : end]
            negate = body.startswith("!")
            body = body[1:] if negate else body
            body = body.replace("\\", "\\\\").replace("^", "\\^")
            out.append(f"[{'^' if negate else ''}{body}]")
            i = end
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


@dataclass(slots=True)
class _Image:
    """What the rules look at in one process image, extracted once (paths and names in
    lower case: globs ignore case)."""

    paths: tuple[str, ...]  # executable path and argv[0], when they are paths
    names: tuple[str, ...]  # their base names; the comm when both are empty
    script: str  # the script an interpreter runs, or ""
    module: str  # python -m MODULE, or ""
    line: str  # the command line joined with spaces (case kept: regexes decide)


def _image(exe: str, name: str, cmdline: Sequence[str], cwd: str = "") -> _Image:
    exe = exe.removesuffix(" (deleted)").lower()  # " (deleted)": an upgraded binary still running
    argv0 = cmdline[0].lower() if cmdline else ""
    exe_name = exe.rpartition("/")[2]
    argv0_name = argv0.rpartition("/")[2]
    paths: tuple[str, ...] = tuple(p for p in (exe, argv0 if argv0 != exe else "") if "/" in p)
    if argv0_name and argv0_name != exe_name:
        names: tuple[str, ...] = (exe_name, argv0_name) if exe_name else (argv0_name,)
    else:
        names = (exe_name,) if exe_name else ((name.lower(),) if name else ())
    script = module = ""
    if len(cmdline) > 1:
        interpreter = next((n for n in names if _INTERPRETER_RE.match(n)), "")
        if interpreter:
            script, module = _script_and_module(cmdline, skip_run=interpreter in ("bun", "deno"))
            if script and cwd and not script.startswith("/") and "/" in cwd:
                script = os.path.normpath(os.path.join(cwd, script))  # `cd app && python server.py`
    return _Image(paths, names, script.lower(), module, " ".join(cmdline))


def _script_and_module(args: Sequence[str], skip_run: bool) -> tuple[str, str]:
    """(script, module) an interpreter's arguments name: its first non-option argument,
    or the module after -m. Option values (-X utf8, --require x) are skipped."""
    i = 1
    while i < len(args):
        arg = args[i]
        if arg == "-m":
            return "", args[i + 1] if i + 1 < len(args) else ""
        if arg.startswith("-m") and not arg.startswith("--"):
            return "", arg[2:]
        if arg in _NO_SCRIPT_OPTIONS:
            return "", ""
        if arg == "--":
            return (args[i + 1], "") if i + 1 < len(args) else ("", "")
        if arg.startswith("-"):
            i += 2 if arg in _OPTIONS_WITH_VALUE else 1
            continue
        if skip_run and arg == "run":
            i += 1
            continue
        return arg, ""
    return "", ""


def _search_source(glob: str) -> str:
    """A regex whose `search` matches exactly where the glob's fullmatch does, without the
    leading ".*" that makes a fullmatch backtrack over the whole path for every glob."""
    tail = "" if glob.endswith("*") else r"\Z"
    return glob_regex(glob.strip("*")) + tail


class _GlobSet:
    """Globs of several entries, for "first entry in order that matches".

    Literal names go to a dict; the other globs are tried at once with one alternation
    (unanchored ones searched, the others matched at the start), a quick no for the
    common case: a process that is no known app. Only on a hit are the entries tried
    one by one, in order. Case is folded by lower-casing the globs and the value, not
    with re.IGNORECASE, which disables the regex engine's first-character scan.
    """

    def __init__(self, items: Iterable[tuple[int, Sequence[str]]], by_path: bool) -> None:
        self.literals: dict[str, int] = {}
        self.entries: list[tuple[int, re.Pattern[str]]] = []
        floating: list[str] = []
        anchored: list[str] = []
        for index, globs in items:
            wild: list[str] = []
            for glob in globs:
                glob = glob.lower()
                if ("/" in glob) != by_path:
                    continue
                if any(c in glob for c in "*?["):
                    wild.append(glob)
                    (floating if glob.startswith("*") else anchored).append(_search_source(glob))
                else:
                    self.literals.setdefault(glob, index)
            if wild:
                self.entries.append((index, re.compile("|".join(glob_regex(g) for g in wild), re.DOTALL)))
        self.floating = re.compile("|".join(floating), re.DOTALL) if floating else None
        self.anchored = re.compile("|".join(anchored), re.DOTALL) if anchored else None

    def first(self, values: Iterable[str], best: int) -> int:
        """The lowest entry index below `best` matching any of `values` (lower case), else `best`."""
        for value in values:
            found = self.literals.get(value)
            if found is not None and found < best:
                best = found
            if (self.floating is not None and self.floating.search(value)) or (
                self.anchored is not None and self.anchored.match(value)
            ):
                for index, regex in self.entries:
                    if index >= best:
                        break
                    if regex.fullmatch(value):
                        best = index
                        break
        return best


class _Searches:
    """Command-line regexes of several entries, for "first entry in order that matches".

    Patterns without groups are also searched at once in one alternation (a quick no);
    patterns with groups (backreferences would be renumbered) or global inline flags
    (which cannot be nested) are always tried on their own.
    """

    def __init__(self, items: Iterable[tuple[int, str]]) -> None:
        self.entries: list[tuple[int, re.Pattern[str], bool]] = []
        any_of: list[str] = []
        for index, source in items:
            pattern = re.compile(source)
            combinable = pattern.groups == 0 and _nests(source)
            self.entries.append((index, pattern, combinable))
            if combinable:
                any_of.append(f"(?:{source})")
        self.any_of = re.compile("|".join(any_of)) if any_of else None

    def first(self, line: str, best: int) -> int:
        hit = self.any_of is not None and self.any_of.search(line) is not None
        for index, pattern, combinable in self.entries:
            if index >= best:
                break
            if (hit or not combinable) and pattern.search(line):
                return index
        return best


def _nests(source: str) -> bool:
    """True when a pattern still compiles inside a non-capturing group."""
    try:
        re.compile(f"(?:{source})|")
    except re.error:
        return False
    return True


class _Rules:
    """The own rules (exe, script, module, cmdline) of a list of entries, compiled."""

    def __init__(self, entries: Sequence[tuple[int, AppEntry]]) -> None:
        exe = [(i, e.exe) for i, e in entries if e.exe]
        script = [(i, e.script) for i, e in entries if e.script]
        self.exe_names = _GlobSet(exe, by_path=False)
        self.exe_paths = _GlobSet(exe, by_path=True)
        self.script_names = _GlobSet(script, by_path=False)
        self.script_paths = _GlobSet(script, by_path=True)
        self.modules: dict[str, int] = {}
        for i, entry in entries:
            for module in entry.module:
                self.modules.setdefault(module, i)
        self.cmdline = _Searches((i, p) for i, e in entries for p in e.cmdline)

    def first(self, image: _Image, best: int) -> tuple[int, str]:
        """(index, via) of the first entry below `best` matching the image, else (best, "")."""
        via = ""
        found = self.exe_paths.first(image.paths, self.exe_names.first(image.names, best))
        if found < best:
            best, via = found, "exe"
        if image.script:
            found = self.script_paths.first((image.script,), best)
            found = self.script_names.first((image.script.rpartition("/")[2],), found)
            if found < best:
                best, via = found, "script"
        if image.module and self.modules:
            module = image.module
            while module:
                index = self.modules.get(module)
                if index is not None and index < best:
                    best, via = index, "module"
                module = module.rpartition(".")[0]
        found = self.cmdline.first(image.line, best)
        if found < best:
            best, via = found, "cmdline"
        return best, via


@dataclass(frozen=True, slots=True)
class _Profile:
    providers: frozenset[str]
    hosts: re.Pattern[str] | None

    def allows(self, provider_id: str | None, host: str | None) -> bool:
        if provider_id is not None and provider_id in self.providers:
            return True
        return bool(host and self.hosts is not None and self.hosts.fullmatch(host))


@dataclass(slots=True)
class _Resolved:
    """A process's app: the entry (None when unknown) and the context events carry."""

    entry: AppEntry | None
    context: dict[str, Any]
    inherited: bool = False  # attributed through an ancestor (context names it)


_UNKNOWN = _Resolved(None, UNKNOWN_APP)


class AppMatcher:
    """Process -> OISP app context, cached per process image and per pid.

    Resolution, in order:
    1. the first entry (config entries, then built-ins) whose own rules match the
       process's executable, argv[0], script, `python -m` module or command line;
       entries with a `parent` condition count only when the parent process's app is
       one they name;
    2. otherwise the app of the nearest identified ancestor, if that app passes to its
       children (agents do, IDEs and terminals do not): via "parent";
    3. otherwise "unknown".
    `lookup` gives a ProcessInfo by pid (ProcessCache.get: cached, else read from /proc).
    """

    def __init__(self, entries: Sequence[AppEntry], lookup: Callable[[int], ProcessInfo]) -> None:
        self.entries = tuple(entries)
        self._lookup = lookup
        indexed = list(enumerate(self.entries))
        self._rules = _Rules([(i, e) for i, e in indexed if not e.parent and e.has_own_rules])
        self._parent_entries = [(i, e, _Rules([(i, e)]) if e.has_own_rules else None)
                                for i, e in indexed if e.parent]  # fmt: skip
        self._contexts: dict[tuple[int, str], dict[str, Any]] = {}
        self._profiles: dict[str, _Profile] = {}
        for entry in self.entries:
            if entry.profiled and entry.id not in self._profiles:
                hosts = entry.expected_hosts or ()
                source = "|".join(glob_regex(h) for h in hosts)
                self._profiles[entry.id] = _Profile(
                    frozenset(entry.expected_providers or ()),
                    re.compile(source, re.IGNORECASE | re.DOTALL) if source else None,
                )
        self._images: dict[tuple[str, str, tuple[str, ...], str], tuple[int, str]] = {}
        self._pids: dict[int, tuple[ProcessInfo, _Resolved]] = {}
        self._verdicts: dict[tuple[str, str | None, str | None], bool] = {}
        self.evaluations = 0  # images the rules ran on (the rest came from the caches)

    @classmethod
    def from_config(cls, config: AppsConfig, lookup: Callable[[int], ProcessInfo]) -> AppMatcher:
        """From the config's [apps] section (`extra` entries, `builtin` switch)."""
        extra = [entry_from_mapping(e.model_dump(exclude_none=True), "config") for e in config.extra]
        return cls(merge_entries(extra, builtin_apps() if config.builtin else ()), lookup)

    def __len__(self) -> int:
        return len(self.entries)

    # ---- per event ------------------------------------------------------------------------

    def forget(self, pid: int) -> None:
        """The process cache let go of `pid` (an old exit): so does this cache."""
        self._pids.pop(pid, None)

    def context(self, info: ProcessInfo) -> dict[str, Any]:
        """The `app` object of an event of this process (shared between events: never modify)."""
        cached = self._pids.get(info.pid)
        if cached is not None and cached[0] is info:
            return cached[1].context
        return self._resolve(info, 0).context

    def check_profile(self, app: dict[str, Any], provider_id: str | None, host: str | None) -> dict[str, Any]:
        """`app` as an AI call to (provider, host) should carry it: flagged when outside the profile.

        Inside the profile means: the provider id is one of `expected_providers` OR the
        host (no port) matches one of `expected_hosts`. Apps without a profile (unknown
        and identified tiers) are never flagged. A flagged call gets a copy of `app`
        with `profile_violation: true` and `unexpected: {provider, host}`.
        """
        profile = self._profiles.get(app["id"])
        if profile is None:
            return app
        if host and ":" in host:
            host = split_host(host)[0]
        key = (app["id"], provider_id, host)
        allowed = self._verdicts.get(key)
        if allowed is None:
            allowed = profile.allows(provider_id, host)
            if len(self._verdicts) >= _MAX_VERDICTS:
                self._verdicts.clear()
            self._verdicts[key] = allowed
        if allowed:
            return app
        flagged = dict(app)
        flagged["profile_violation"] = True
        unexpected: dict[str, Any] = {"provider": provider_id}
        if host:
            unexpected["host"] = host
        flagged["unexpected"] = unexpected
        return flagged

    # ---- resolution ----------------------------------------------------------------------

    def _resolve(self, info: ProcessInfo, depth: int) -> _Resolved:
        cached = self._pids.get(info.pid)
        if cached is not None and cached[0] is info:
            return cached[1]
        index, via = self._own(info)
        resolved: _Resolved | None = None
        if self._parent_entries and any(i < index for i, _, _ in self._parent_entries):
            parent = self._parent(info, depth)
            parent_id = parent.entry.id if parent is not None and parent.entry is not None else None
            if parent_id is not None:
                for i, entry, rules in self._parent_entries:
                    if i >= index:
                        break
                    if parent_id not in entry.parent:
                        continue
                    if rules is None:
                        resolved = _Resolved(entry, {**entry.context("parent"), "ancestor_pid": info.ppid})
                        break
                    found, kind = rules.first(_image(info.exe, info.name, info.cmdline, info.cwd), index)
                    if found < index:
                        index, via = found, kind
                        break
        if resolved is None:
            if index < len(self.entries):
                entry = self.entries[index]
                resolved = _Resolved(entry, self._context(index, via))
            else:
                resolved = self._inherited(info, depth)
        if len(self._pids) >= _MAX_PIDS:
            self._pids.clear()
        self._pids[info.pid] = (info, resolved)
        return resolved

    def _own(self, info: ProcessInfo) -> tuple[int, str]:
        """(entry index, via) from the process's own image; index len(entries) if none."""
        cmdline = tuple(info.cmdline)
        key = (info.exe, "" if info.exe or cmdline else info.name, cmdline, info.cwd)
        found = self._images.get(key)
        if found is None:
            self.evaluations += 1
            found = self._rules.first(_image(*key), len(self.entries))
            if len(self._images) >= _MAX_IMAGES:
                self._images.clear()
            self._images[key] = found
        return found

    def _parent(self, info: ProcessInfo, depth: int) -> _Resolved | None:
        ppid = info.ppid
        if ppid <= 1 or ppid == info.pid or depth >= _MAX_DEPTH:
            return None
        return self._resolve(self._lookup(ppid), depth + 1)

    def _inherited(self, info: ProcessInfo, depth: int) -> _Resolved:
        parent = self._parent(info, depth)
        if parent is None or parent.entry is None or not parent.entry.children:
            return _UNKNOWN
        if parent.inherited:
            return parent  # identified further up: same context, same ancestor_pid
        return _Resolved(parent.entry, {**parent.entry.context("parent"), "ancestor_pid": info.ppid}, True)

    def _context(self, index: int, via: str) -> dict[str, Any]:
        key = (index, via)
        context = self._contexts.get(key)
        if context is None:
            context = self._contexts[key] = self.entries[index].context(via)
        return context
