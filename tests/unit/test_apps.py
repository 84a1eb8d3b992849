"""App identification: the built-in table, match rules, parent inheritance, config
additions, profiles and caches (oisp_sensor.enrich.apps)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import pytest

from oisp_sensor.config import ConfigError, SensorConfig, load_config
from oisp_sensor.enrich.apps import (
    UNKNOWN_APP,
    AppEntry,
    AppMatcher,
    builtin_apps,
    entry_from_mapping,
    glob_regex,
    merge_entries,
    parse_apps,
)
from oisp_sensor.enrich.process import ProcessInfo

CATEGORIES = {
    "agent", "cli", "ide", "ide-extension", "notebook", "local-model-server", "framework", "chat-ui",
    "gateway", "automation", "terminal",
}  # fmt: skip


class Procs:
    """A fake process table standing in for ProcessCache.get (counts its lookups)."""

    def __init__(self, infos: Iterable[ProcessInfo] = ()) -> None:
        self.table = {i.pid: i for i in infos}
        self.lookups: list[int] = []

    def add(self, pid: int, ppid: int, exe: str, *cmdline: str, cwd: str = "") -> ProcessInfo:
        info = ProcessInfo(pid=pid, ppid=ppid, name=exe.rsplit("/", 1)[-1][:15], exe=exe,
                           cmdline=list(cmdline) or [exe], cwd=cwd, complete=True)  # fmt: skip
        self.table[pid] = info
        return info

    def get(self, pid: int) -> ProcessInfo:
        self.lookups.append(pid)
        return self.table.get(pid) or ProcessInfo(pid=pid)


def matcher(procs: Procs | None = None, extra: Iterable[AppEntry] = ()) -> AppMatcher:
    return AppMatcher(merge_entries(extra, builtin_apps()), (procs or Procs()).get)


def app_of(exe: str, *cmdline: str, cwd: str = "") -> dict[str, object]:
    procs = Procs()
    info = procs.add(100, 1, exe, *cmdline, cwd=cwd)
    return matcher(procs).context(info)


# ---- the built-in table -------------------------------------------------------------------------


def test_builtin_table_is_large_valid_and_covers_the_issue() -> None:
    apps = builtin_apps()
    assert len(apps) >= 25
    ids = [a.id for a in apps]
    assert len(ids) == len(set(ids))
    for app in apps:
        assert app.category in CATEGORIES, app.id
        assert app.has_own_rules, app.id
    named = {
        "claude-code", "codex-cli", "gemini-cli", "aider", "goose", "openhands", "cursor", "vscode",
        "github-copilot", "continue", "cline", "zed", "windsurf", "jetbrains", "open-interpreter",
        "langchain", "llamaindex", "crewai", "jupyter", "ollama", "llama-cpp", "vllm",
    }  # fmt: skip
    assert named <= set(ids)
    profiled = [a for a in apps if a.tier == "profiled"]
    assert len(profiled) >= 10
    assert {"claude-code", "codex-cli", "gemini-cli", "github-copilot", "ollama"} <= {a.id for a in profiled}


def test_builtin_expected_providers_exist_in_the_provider_registry() -> None:
    from oisp_sensor.decode.providers.registry import ProviderRegistry

    known = {p.id for p in ProviderRegistry.default()}
    for app in builtin_apps():
        assert set(app.expected_providers or ()) <= known, app.id


# ---- rules on realistic process images -----------------------------------------------------------

NPM = "/usr/lib/node_modules"
CASES = [
    # (expected id, via, exe, cmdline...)
    ("claude-code", "script", "/usr/bin/node", "node", f"{NPM}/@anthropic-ai/claude-code/cli.js", "-p", "hi"),
    ("claude-code", "exe", "/usr/bin/node", "claude"),  # the process title Claude Code sets
    ("claude-code", "exe", "/root/.local/share/claude/versions/2.0.14", "claude", "--resume"),
    ("claude-code", "script", "/usr/bin/node", "node", "/usr/local/bin/claude"),
    ("codex-cli", "exe", f"{NPM}/@openai/codex/vendor/x86_64-unknown-linux-musl/codex/codex", "codex", "exec"),
    ("codex-cli", "script", "/usr/bin/node", "node", f"{NPM}/@openai/codex/bin/codex.js"),
    ("gemini-cli", "script", "/usr/bin/node", "node", "/usr/local/bin/gemini"),
    ("gemini-cli", "script", "/usr/bin/node", "node", "--require", "/opt/preload.js",
     f"{NPM}/@google/gemini-cli/dist/index.js"),
    ("aider", "exe", "/usr/bin/python3.12", "/root/.local/pipx/venvs/aider-chat/bin/python",
     "/root/.local/bin/aider", "--model", "gpt-4o"),
    ("aider", "script", "/usr/bin/python3.11", "/usr/bin/python3", "/home/dev/.local/bin/aider"),
    ("aider", "script", "/usr/bin/python3.11", "python3", "-X", "utf8", "-u", "/usr/local/bin/aider"),
    ("aider", "module", "/usr/bin/python3.11", "python", "-m", "aider", "--yes"),
    ("goose", "exe", "/usr/local/bin/goose", "goose", "session"),
    ("openhands", "cmdline", "/usr/bin/python3.12", "/usr/bin/python3", "-m", "uvicorn",
     "openhands.server.listen:app", "--host", "0.0.0.0"),
    ("open-interpreter", "script", "/usr/bin/python3.11", "/usr/bin/python3", "/usr/local/bin/interpreter"),
    ("cursor", "exe", "/usr/share/cursor/cursor", "/usr/share/cursor/cursor", "--no-sandbox"),
    ("cursor", "exe", "/tmp/.mount_CursorAbC12/usr/share/cursor/cursor", "cursor"),
    ("cursor-agent", "exe", "/root/.local/share/cursor-agent/versions/2025.09.18/node",
     "/root/.local/share/cursor-agent/versions/2025.09.18/node",
     "/root/.local/share/cursor-agent/versions/2025.09.18/index.js"),
    ("vscode", "exe", "/root/.vscode-server/cli/servers/Stable-abc/server/node",
     "/root/.vscode-server/cli/servers/Stable-abc/server/node",
     "/root/.vscode-server/cli/servers/Stable-abc/server/out/bootstrap-fork", "--type=extensionHost"),
    # the Copilot language server started by that VS Code server: an entry before vscode
    ("github-copilot", "script", "/root/.vscode-server/cli/servers/Stable-abc/server/node",
     "/root/.vscode-server/cli/servers/Stable-abc/server/node",
     "/root/.vscode-server/extensions/github.copilot-1.300.0/dist/language-server.js", "--stdio"),
    ("github-copilot", "script", "/usr/bin/node", "node",
     "/root/.local/share/nvim/lazy/copilot.lua/copilot/js/language-server.js", "--stdio"),
    ("zed", "exe", "/usr/libexec/zed-editor", "/usr/libexec/zed-editor", "--foreground"),
    ("windsurf", "exe", "/usr/share/windsurf/windsurf", "/usr/share/windsurf/windsurf"),
    ("windsurf", "exe",
     "/usr/share/windsurf/resources/app/extensions/windsurf/bin/language_server_linux_x64",
     "/usr/share/windsurf/resources/app/extensions/windsurf/bin/language_server_linux_x64", "--api_server_url"),
    ("codeium", "exe", "/root/.vscode/extensions/codeium.codeium-1.42.0/dist/abc/language_server_linux_x64",
     "language_server_linux_x64"),
    ("jetbrains", "cmdline", "/opt/idea-IU-252.1/jbr/bin/java", "/opt/idea-IU-252.1/jbr/bin/java",
     "-Xmx2048m", "com.intellij.idea.Main"),
    ("jetbrains", "exe", "/opt/pycharm-2025.2/bin/pycharm", "/opt/pycharm-2025.2/bin/pycharm"),
    ("continue", "exe", "/root/.local/share/JetBrains/PyCharm2025.2/continue-intellij-extension/core/"
     "linux-x64/bin/continue-binary", "continue-binary"),
    ("cline", "script", "/usr/bin/node", "node", f"{NPM}/cline/dist/cli.mjs"),
    ("jupyter", "module", "/usr/bin/python3.11", "/usr/bin/python3", "-m", "ipykernel_launcher", "-f",
     "/root/.local/share/jupyter/runtime/kernel-1a2b.json"),
    ("jupyter", "script", "/usr/bin/python3.11", "/usr/bin/python3", "/usr/local/bin/jupyter-lab"),
    ("ollama", "exe", "/usr/local/bin/ollama", "/usr/local/bin/ollama", "serve"),
    ("ollama", "exe", "/usr/local/bin/ollama (deleted)", "/usr/local/bin/ollama", "runner", "--model", "x"),
    # Jan's own llama.cpp build: Jan, not llama.cpp (Jan comes first)
    ("jan", "exe", "/root/.local/share/Jan/data/llamacpp/backends/b6000/linux-avx2/build/bin/llama-server",
     "llama-server", "--port", "3456"),
    ("llama-cpp", "exe", "/usr/local/bin/llama-server", "llama-server", "-m", "model.gguf"),
    ("llama-cpp", "module", "/usr/bin/python3.11", "python3", "-m", "llama_cpp.server", "--model", "m.gguf"),
    ("vllm", "script", "/usr/bin/python3.12", "/usr/bin/python3", "/usr/local/bin/vllm", "serve", "Qwen/Qwen3"),
    ("vllm", "module", "/usr/bin/python3.12", "python3", "-m", "vllm.entrypoints.openai.api_server"),
    ("crewai", "script", "/usr/bin/python3.12", "/usr/bin/python3", "/usr/local/bin/crewai", "run"),
    ("langchain", "script", "/usr/bin/python3.12", "/usr/bin/python3", "/usr/local/bin/langgraph", "dev"),
    ("llamaindex", "module", "/usr/bin/python3.12", "python3", "-m", "llama_deploy.apiserver"),
    ("litellm", "script", "/usr/bin/python3.12", "/usr/bin/python3", "/usr/local/bin/litellm", "--config", "c"),
    ("open-webui", "cmdline", "/usr/bin/python3.11", "python3", "-m", "uvicorn", "open_webui.main:app"),
    ("n8n", "script", "/usr/bin/node", "node", "/usr/local/bin/n8n", "start"),
    ("opencode", "script", "/usr/local/bin/bun", "bun", "run", f"{NPM}/opencode-ai/bin/opencode"),
]  # fmt: skip


@pytest.mark.parametrize(("app_id", "via", "exe", "cmdline"), [(c[0], c[1], c[2], c[3:]) for c in CASES])
def test_realistic_process_images(app_id: str, via: str, exe: str, cmdline: tuple[str, ...]) -> None:
    app = app_of(exe, *cmdline)
    assert (app["id"], app["via"]) == (app_id, via)
    entry = next(e for e in builtin_apps() if e.id == app_id)
    assert app == {
        "id": app_id,
        "name": entry.name,
        "tier": entry.tier,
        "category": entry.category,
        "via": via,
    }


def test_relative_script_is_resolved_against_the_cwd() -> None:
    app = app_of("/usr/bin/python3.11", "python", "server.py", "--listen", cwd="/opt/text-generation-webui")
    assert app["id"] == "text-generation-webui"
    assert app_of("/usr/bin/python3.11", "python", "server.py", cwd="/srv/other")["id"] == "unknown"


@pytest.mark.parametrize(
    ("exe", "cmdline"),
    [
        ("/usr/bin/python3.11", ("/usr/bin/python3", "app.py")),
        # a script rule applies to interpreters only: an editor opening the file is not the app
        ("/usr/bin/vim.basic", ("vim", f"{NPM}/@anthropic-ai/claude-code/cli.js")),
        (
            "/usr/bin/node",
            ("node", f"{NPM}/npm/bin/npm-cli.js", "install", "-g", "@anthropic-ai/claude-code"),
        ),
        ("/usr/bin/python3.11", ("python3", "-m", "pip", "install", "aider-chat")),
        ("/usr/bin/python3.11", ("python3", "-c", "import aider; print(aider)")),
        ("/usr/bin/bash", ("/bin/bash", "-c", "claude --version")),
        ("/usr/bin/curl", ("curl", "https://api.openai.com/v1/models")),
        ("", ()),
    ],
)
def test_unrelated_processes_are_unknown(exe: str, cmdline: tuple[str, ...]) -> None:
    procs = Procs()
    info = ProcessInfo(pid=7, ppid=1, name="x", exe=exe, cmdline=list(cmdline))
    procs.table[7] = info
    assert matcher(procs).context(info) is UNKNOWN_APP
    assert UNKNOWN_APP == {"id": "unknown", "name": "Unknown", "tier": "unknown", "category": "unknown"}


def test_process_gone_before_first_sight_is_matched_by_its_kernel_name() -> None:
    info = ProcessInfo(pid=9, name="ollama")  # ProcessCache.known(): /proc was already gone
    assert matcher().context(info)["id"] == "ollama"


def test_tiers() -> None:
    assert app_of("/usr/bin/node", "claude")["tier"] == "profiled"
    assert app_of("/usr/local/bin/goose", "goose")["tier"] == "identified"
    assert app_of("/usr/bin/true", "true")["tier"] == "unknown"


# ---- parents -------------------------------------------------------------------------------------


def test_children_of_an_agent_inherit_it_through_any_depth() -> None:
    procs = Procs()
    procs.add(100, 50, "/usr/bin/node", "claude")
    procs.add(101, 100, "/usr/bin/bash", "/bin/bash", "-c", "python3 tool.py")
    child = procs.add(102, 101, "/usr/bin/python3.11", "python3", "tool.py")
    m = matcher(procs)
    app = m.context(child)
    assert app == {"id": "claude-code", "name": "Claude Code", "tier": "profiled", "category": "agent",
                   "via": "parent", "ancestor_pid": 100}  # fmt: skip
    # the shell in between got the same answer (and it was cached on the way)
    assert m.context(procs.table[101]) == app


def test_children_of_an_ide_do_not_inherit_it() -> None:
    procs = Procs()
    procs.add(200, 1, "/usr/share/code/code", "/usr/share/code/code")
    procs.add(201, 200, "/usr/bin/bash", "/bin/bash")
    python = procs.add(202, 201, "/usr/bin/python3.11", "python3", "my_script.py")
    assert matcher(procs).context(python) is UNKNOWN_APP


def test_an_agent_started_in_an_ide_terminal_passes_itself_on() -> None:
    procs = Procs()
    procs.add(300, 1, "/usr/share/code/code", "/usr/share/code/code")
    procs.add(301, 300, "/usr/bin/bash", "/bin/bash")
    procs.add(302, 301, "/usr/bin/python3.11", "/usr/bin/python3", "/usr/local/bin/aider")
    procs.add(303, 302, "/usr/bin/bash", "/bin/bash", "-c", "pytest")
    pytest_proc = procs.add(304, 303, "/usr/bin/python3.11", "python3", "-m", "pytest")
    app = matcher(procs).context(pytest_proc)
    assert (app["id"], app["via"], app["ancestor_pid"]) == ("aider", "parent", 302)


def test_own_rules_win_over_inheritance() -> None:
    procs = Procs()
    procs.add(400, 1, "/usr/bin/node", "claude")
    ollama = procs.add(401, 400, "/usr/local/bin/ollama", "ollama", "run", "llama3")
    assert matcher(procs).context(ollama)["id"] == "ollama"


def test_parent_walk_stops_at_init_and_at_missing_parents() -> None:
    procs = Procs()
    orphan = procs.add(500, 1, "/usr/bin/python3.11", "python3", "x.py")
    assert matcher(procs).context(orphan) is UNKNOWN_APP
    assert procs.lookups == []  # pid 1 is never looked up
    lost = procs.add(501, 77777, "/usr/bin/python3.11", "python3", "x.py")  # parent gone
    assert matcher(procs).context(lost) is UNKNOWN_APP


def test_a_pid_cycle_is_bounded() -> None:
    procs = Procs()
    procs.add(600, 601, "/usr/bin/bash", "bash")
    a = procs.add(601, 600, "/usr/bin/bash", "bash")
    assert matcher(procs).context(a) is UNKNOWN_APP


def test_parent_rule_entries_from_the_config() -> None:
    mcp = entry_from_mapping(
        {"id": "claude-mcp", "name": "MCP server of Claude Code", "category": "agent",
         "parent": ["claude-code"], "cmdline": [r"\bmcp\b|mcp-server"]},
        "config",
    )  # fmt: skip
    sandbox = entry_from_mapping({"id": "codex-sandbox", "name": "Codex sandbox", "parent": ["codex-cli"]})
    procs = Procs()
    procs.add(700, 1, "/usr/bin/node", "claude")
    server = procs.add(701, 700, "/usr/bin/node", "node", "/opt/mcp-server-github/index.js")
    other = procs.add(702, 700, "/usr/bin/python3.11", "python3", "build.py")
    procs.add(710, 1, "/usr/local/bin/codex", "codex")
    sandboxed = procs.add(711, 710, "/usr/bin/bash", "bash", "-lc", "ls")
    elsewhere = procs.add(720, 1, "/usr/bin/node", "node", "/opt/mcp-server-github/index.js")
    m = matcher(procs, [mcp, sandbox])
    assert (m.context(server)["id"], m.context(server)["via"]) == ("claude-mcp", "cmdline")
    assert (m.context(other)["id"], m.context(other)["via"]) == ("claude-code", "parent")
    assert m.context(sandboxed) == {"id": "codex-sandbox", "name": "Codex sandbox", "tier": "identified",
                                    "category": "other", "via": "parent", "ancestor_pid": 710}  # fmt: skip
    assert m.context(elsewhere) is UNKNOWN_APP


# ---- caches --------------------------------------------------------------------------------------


def test_rules_run_once_per_image() -> None:
    procs = Procs()
    procs.add(800, 1, "/usr/bin/node", "claude")
    workers = [procs.add(pid, 800, "/usr/bin/python3.11", "python3", "w.py") for pid in range(801, 811)]
    m = matcher(procs)
    first = [m.context(w) for w in workers]
    assert m.evaluations == 2  # claude's image, then the workers' one image
    assert set(procs.lookups) == {800}  # the parent (a ProcessCache hit): its app is not matched again
    again = [m.context(w) for w in workers]
    assert all(a is b for a, b in zip(first, again, strict=True))
    assert m.evaluations == 2


def test_a_new_image_of_the_same_pid_is_matched_again() -> None:
    procs = Procs()
    before = procs.add(900, 1, "/usr/bin/bash", "bash")
    m = matcher(procs)
    assert m.context(before) is UNKNOWN_APP
    after = procs.add(900, 1, "/usr/local/bin/ollama", "ollama", "serve")  # exec: a new ProcessInfo
    assert m.context(after)["id"] == "ollama"


def test_identified_contexts_are_shared_objects() -> None:
    procs = Procs()
    a = procs.add(1000, 1, "/usr/local/bin/ollama", "ollama", "serve")
    b = procs.add(1001, 1, "/usr/local/bin/ollama", "ollama", "serve")
    m = matcher(procs)
    assert m.context(a) is m.context(b)


# ---- profiles ------------------------------------------------------------------------------------


def test_profile_check() -> None:
    m = matcher()
    claude = m.context(ProcessInfo(pid=1, exe="/usr/bin/node", cmdline=["claude"]))
    assert m.check_profile(claude, "anthropic", "api.anthropic.com") is claude
    assert m.check_profile(claude, "aws-bedrock", "bedrock-runtime.us-east-1.amazonaws.com") is claude
    # matched by a host glob; the port does not count
    assert m.check_profile(claude, "unknown", "gateway.anthropic.com:443") is claude
    flagged = m.check_profile(claude, "openai", "api.openai.com")
    assert flagged is not claude and "profile_violation" not in claude
    assert flagged == {**claude, "profile_violation": True,
                       "unexpected": {"provider": "openai", "host": "api.openai.com"}}  # fmt: skip
    # host unknown (a response whose request was forgotten): judged on the provider alone
    assert m.check_profile(claude, "openai", None)["unexpected"] == {"provider": "openai"}
    # identified and unknown apps have no profile: never flagged
    goose = m.context(ProcessInfo(pid=2, exe="/usr/local/bin/goose", cmdline=["goose"]))
    assert m.check_profile(goose, "openai", "api.openai.com") is goose
    assert m.check_profile(UNKNOWN_APP, "openai", "api.openai.com") is UNKNOWN_APP


def test_local_model_server_profile() -> None:
    m = matcher()
    ollama = m.context(ProcessInfo(pid=3, exe="/usr/local/bin/ollama", cmdline=["ollama", "run", "llama3"]))
    assert m.check_profile(ollama, "ollama", "localhost:11434") is ollama
    assert m.check_profile(ollama, "ollama", "ollama.com") is ollama
    assert m.check_profile(ollama, "anthropic", "api.anthropic.com")["profile_violation"] is True


def test_inherited_apps_are_checked_against_the_profile() -> None:
    procs = Procs()
    procs.add(1100, 1, "/usr/bin/node", "claude")
    script = procs.add(1101, 1100, "/usr/bin/python3.11", "python3", "call_openai.py")
    m = matcher(procs)
    app = m.check_profile(m.context(script), "openai", "api.openai.com")
    assert app["via"] == "parent" and app["profile_violation"] is True


# ---- loading and the config -----------------------------------------------------------------------


def test_glob_regex() -> None:
    assert re.fullmatch(glob_regex("*/claude/versions/*"), "/root/.local/share/claude/versions/2.0.1")
    assert re.fullmatch(glob_regex("llama-?li"), "llama-cli")
    assert re.fullmatch(glob_regex("python3.[0-9]*"), "python3.12")
    assert not re.fullmatch(glob_regex("python3.[!0-9]"), "python3.1")
    assert re.fullmatch(glob_regex("a.b+c"), "a.b+c") and not re.fullmatch(glob_regex("a.b"), "axb")


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"id": "Bad Id", "exe": ["x"]}, "lowercase key"),
        ({"id": "unknown", "exe": ["x"]}, "reserved"),
        ({"id": "x"}, "at least one of"),
        ({"id": "x", "exe": "x"}, "exe must be a list"),
        ({"id": "x", "cmdline": ["("]}, "cmdline[0] is not a valid regular expression"),
        ({"id": "x", "exe": ["x"], "colour": "red"}, "unknown key 'colour'"),
        ({"id": "x", "exe": ["x"], "category": "Not Valid"}, "category"),
        ({"id": "x", "exe": ["x"], "children": "yes"}, "children"),
    ],
)
def test_entry_validation(table: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        entry_from_mapping(table)


def test_duplicate_ids_are_refused() -> None:
    with pytest.raises(ValueError, match="duplicate app id"):
        parse_apps('[[app]]\nid = "a"\nexe = ["a"]\n[[app]]\nid = "a"\nexe = ["b"]\n')


def test_children_default_by_category() -> None:
    assert entry_from_mapping({"id": "a", "category": "agent", "exe": ["a"]}).children
    assert not entry_from_mapping({"id": "a", "category": "ide", "exe": ["a"]}).children
    assert entry_from_mapping({"id": "a", "category": "ide", "exe": ["a"], "children": True}).children


EXTRA = """
[[apps.extra]]
id = "support-bot"
name = "Acme support bot"
category = "agent"
exe = ["/opt/acme/bin/support-*"]
cmdline = ['acme\\.support\\.main']
expected_providers = ["openai"]
expected_hosts = ["llm-gateway.acme.internal"]

[[apps.extra]]
id = "aider"
name = "Aider (company build)"
category = "agent"
script = ["acme-aider"]
expected_providers = ["azure"]
"""


def _config(tmp_path: Path, text: str) -> SensorConfig:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return load_config(str(path), environ={})[0]


def test_config_extra_apps(tmp_path: Path) -> None:
    config = _config(tmp_path, EXTRA)
    procs = Procs()
    m = AppMatcher.from_config(config.apps, procs.get)
    assert len(m) == len(builtin_apps()) + 1  # "aider" replaced the built-in
    bot = procs.add(1, 0, "/opt/acme/bin/support-bot-v2", "/opt/acme/bin/support-bot-v2")
    app = m.context(bot)
    assert app == {"id": "support-bot", "name": "Acme support bot", "tier": "profiled", "category": "agent",
                   "via": "exe"}  # fmt: skip
    assert m.check_profile(app, "unknown", "llm-gateway.acme.internal") is app
    assert m.check_profile(app, "anthropic", "api.anthropic.com")["profile_violation"] is True
    by_cmdline = procs.add(2, 0, "/usr/bin/python3.11", "python3", "-m", "acme.support.main")
    assert m.context(by_cmdline)["via"] == "cmdline"
    # the replaced built-in: its rules are gone, the new ones apply
    assert (
        m.context(procs.add(3, 0, "/usr/bin/python3", "python3", "/usr/local/bin/aider"))["id"] == "unknown"
    )
    company = m.context(procs.add(4, 0, "/usr/bin/python3", "python3", "/usr/local/bin/acme-aider"))
    assert (company["name"], company["tier"]) == ("Aider (company build)", "profiled")


def test_config_without_builtin_apps(tmp_path: Path) -> None:
    config = _config(tmp_path, '[apps]\nbuiltin = false\n[[apps.extra]]\nid = "x"\nname = "X"\nexe = ["x"]\n')
    m = AppMatcher.from_config(config.apps, Procs().get)
    assert [e.id for e in m.entries] == ["x"]
    assert m.context(ProcessInfo(pid=1, exe="/usr/bin/node", cmdline=["claude"])) is UNKNOWN_APP


def test_default_config_uses_the_builtin_table() -> None:
    m = AppMatcher.from_config(SensorConfig().apps, Procs().get)
    assert len(m) == len(builtin_apps())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[apps.extra]]\nid = "x"\nname = "X"\ncmdline = ["ok", "(unclosed"]\n',
         "apps.extra.0.cmdline.1: value error, not a valid regular expression"),
        ('[[apps.extra]]\nid = "x"\nname = "X"\n', "apps.extra.0: value error, an app needs at least one of"),
        ('[[apps.extra]]\nid = "X Y"\nname = "X"\nexe = ["x"]\n', "apps.extra.0.id: string should match"),
        ('[[apps.extra]]\nid = "unknown"\nname = "X"\nexe = ["x"]\n', "apps.extra.0.id: value error, 'unknown' is"),
        ('[[apps.extra]]\nid = "x"\nname = "X"\nexe = ["x"]\ncolour = 1\n', "apps.extra.0.colour: unknown key"),
        ('[[apps.extra]]\nid = "x"\nname = "X"\nexe = ["x"]\n[[apps.extra]]\nid = "x"\nname = "Y"\nexe = ["y"]\n',
         "apps.extra: value error, duplicate app id 'x'"),
        ("[apps]\nbuiltin = 3\n", "apps.builtin: input should be a valid boolean"),
    ],
)  # fmt: skip
def test_config_errors_are_one_line_naming_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(str(path), environ={})
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_environment_override_of_the_builtin_switch(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("")
    config, _ = load_config(str(path), environ={"OISP_APPS__BUILTIN": "false"})
    assert config.apps.builtin is False
