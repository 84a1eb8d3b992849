"""The main screen's views: timeline, totals, process tree, agent sessions.

Each view pulls from the EventStore (the same dicts as the HTTP API) when the app tells
it the store changed; none of them ever blocks capture (queries hold the store's lock
for milliseconds, and the timeline only asks for what changed since its last look).
"""

from __future__ import annotations

from collections import deque
from typing import Any

from rich.text import Text
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import DataTable, Sparkline, Static, Tree
from textual.widgets.tree import TreeNode

from ..store import MAX_LIMIT, EventStore
from . import filters as flt
from . import format as fmt


class Table(DataTable[Any]):
    """A row-cursor table whose Enter is shown in the footer ("Open")."""

    BINDINGS = [Binding("enter", "select_cursor", "Open")]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)


class Timeline(Table):
    """AI calls, oldest first, newest at the bottom; follows new calls while the cursor
    is on the last row. Keeps at most `max_rows` rows (older ones scroll out)."""

    def __init__(self, max_rows: int = 500, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_rows = max_rows
        self.total = 0  # calls matching the filter in the store
        self._since: int | None = None
        self._newest = 0  # seq of the newest row shown
        self._order: deque[str] = deque()
        self._keys: set[str] = set()

    def on_mount(self) -> None:
        for key, label in fmt.TIMELINE_COLUMNS:
            self.add_column(label, key=key)

    def reload(self, store: EventStore, filters: dict[str, Any]) -> None:
        """Start over (a new filter): the last `max_rows` matching calls."""
        self.clear()
        self._order.clear()
        self._keys.clear()
        self._since = None
        self._newest = 0
        self.pull(store, filters)

    def pull(self, store: EventStore, filters: dict[str, Any]) -> None:
        if self._since is None:
            body = store.calls(**filters, limit=min(self.max_rows, MAX_LIMIT))
        else:
            body = store.calls(**filters, since_seq=self._since, limit=MAX_LIMIT)
        self._since = body["latest_seq"]
        self.total = body["total"]
        rows = body["calls"]
        if not rows:
            return
        follow = self.row_count == 0 or self.cursor_row >= self.row_count - 1
        columns = [key for key, _label in fmt.TIMELINE_COLUMNS]
        for row in rows:
            key = row["request_id"]
            cells = fmt.timeline_cells(row)
            if key in self._keys:
                for column, value in zip(columns, cells, strict=True):
                    self.update_cell(key, column, value)
                continue
            if row["seq"] <= self._newest:
                continue  # an update of a call that has already scrolled out of the table
            self._newest = row["seq"]
            self.add_row(*cells, key=key)
            self._order.append(key)
            self._keys.add(key)
        while len(self._order) > self.max_rows:
            old = self._order.popleft()
            self._keys.discard(old)
            self.remove_row(old)
        if follow:
            self.move_cursor(row=self.row_count - 1)

    def selected_id(self) -> str | None:
        if self.row_count == 0:
            return None
        key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        return str(key) if key is not None else None


class StatsView(VerticalScroll):
    """Totals (last 24 h), requests per minute (last hour), per provider, model and app."""

    GROUPS = (("by_provider", "Provider"), ("by_model", "Model"), ("by_app", "App"))

    def compose(self) -> Any:
        yield Static(id="totals")
        yield Static("Requests per minute, last hour", classes="caption")
        yield Sparkline([], id="spark")
        for key, label in self.GROUPS:
            yield Static(f"By {label.lower()}", classes="caption")
            yield DataTable(id=key.replace("_", "-"), cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        for key, label in self.GROUPS:
            table = self.query_one(f"#{key.replace('_', '-')}", DataTable)
            table.add_columns(label, *fmt.AGG_COLUMNS)

    def pull(self, store: EventStore, filters: dict[str, Any]) -> None:
        only = flt.for_stats(filters)
        day = store.stats(window_s=86_400, bucket_s=3600, **only)
        hour = store.stats(window_s=3600, bucket_s=60, **only)
        totals = day["totals"]
        text = Text("Totals, last 24 h", style="bold")
        if only:
            text.append(f"  (filter: {flt.describe(only)})", style="dim")
        text.append("\n")
        for label, value in zip(("requests", "errors", "in tokens", "out tokens", "cost", "p50", "p95"),
                                fmt.agg_cells(totals), strict=True):  # fmt: skip
            text.append(f"{label} ", style="dim")
            text.append(f"{value}   ")
        self.query_one("#totals", Static).update(text)
        self.query_one("#spark", Sparkline).data = [float(b["requests"]) for b in hour["series"]]
        for key, _label in self.GROUPS:
            table = self.query_one(f"#{key.replace('_', '-')}", DataTable)
            table.clear()
            for agg in day[key]:
                table.add_row(fmt.agg_key(agg), *fmt.agg_cells(agg))


class ProcessTree(Tree[int]):
    """Enter shows the process's AI calls (footer: "Calls"); space folds a branch."""

    BINDINGS = [Binding("enter", "select_cursor", "Its calls"), Binding("space", "toggle_node", "Fold")]


class ProcessView(Horizontal):
    """The process tree (AI activity on each line) and the highlighted process's details.

    On a busy machine (a build spawns thousands of processes) only the processes with AI
    calls and their ancestors are shown, past `max_tree` processes."""

    max_tree = 300

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._by_pid: dict[int, TreeNode[int]] = {}
        self._shape: tuple[tuple[int, int], ...] = ()
        self._procs: dict[int, dict[str, Any]] = {}
        self._keep: set[int] | None = None  # None: every process
        self.note = ""

    def compose(self) -> Any:
        tree = ProcessTree("processes", id="proc-tree")
        tree.show_root = False
        tree.auto_expand = False  # Enter opens the process's calls; space folds
        yield tree
        with VerticalScroll(id="proc-side"):
            yield Static(id="proc-detail")

    @property
    def tree(self) -> Tree[int]:
        return self.query_one("#proc-tree", Tree)

    def pull(self, store: EventStore) -> None:
        body = store.processes()
        procs = {p["pid"]: p for p in body["processes"]}
        self._procs = procs
        # The parent of each shown process: rebuild the tree only when that changes.
        shape = tuple(sorted((pid, parent) for parent, p in procs.items() for pid in p["children"]))
        shape += tuple((pid, -1) for pid in body["roots"])
        tree = self.tree
        if shape != self._shape:
            self._shape = shape
            self._keep = self._ai_related(procs) if len(procs) > self.max_tree else None
            self.note = (
                f"{len(procs)} processes: showing the {len(self._keep)} with AI calls and their parents"
                if self._keep is not None
                else ""
            )
            current = tree.cursor_node.data if tree.cursor_node is not None else None
            tree.clear()
            self._by_pid = {}
            for pid in body["roots"]:
                self._add(tree.root, pid, procs, 0)
            if current in self._by_pid:
                tree.move_cursor(self._by_pid[current])
            elif self._by_pid:
                tree.cursor_line = 0
        else:
            for pid, node in self._by_pid.items():
                node.set_label(fmt.process_label(procs[pid]))
        self.show_detail()

    @staticmethod
    def _ai_related(procs: dict[int, dict[str, Any]]) -> set[int]:
        parent = {child: pid for pid, p in procs.items() for child in p["children"]}
        keep: set[int] = set()
        for pid, p in procs.items():
            if not p.get("ai_calls"):
                continue
            up: int | None = pid
            while up is not None and up not in keep:  # the process and its ancestors
                keep.add(up)
                up = parent.get(up)
        return keep

    def _add(self, parent: TreeNode[int], pid: int, procs: dict[int, dict[str, Any]], depth: int) -> None:
        proc = procs.get(pid)
        if proc is None or pid in self._by_pid or depth > 64:
            return
        if self._keep is not None and pid not in self._keep:
            return
        node = parent.add(fmt.process_label(proc), data=pid, expand=True, allow_expand=bool(proc["children"]))
        self._by_pid[pid] = node
        for child in proc["children"]:
            self._add(node, child, procs, depth + 1)

    def selected_pid(self) -> int | None:
        node = self.tree.cursor_node
        return node.data if node is not None else None

    def show_detail(self) -> None:
        pid = self.selected_pid()
        proc = self._procs.get(pid) if pid is not None else None
        detail = self.query_one("#proc-detail", Static)
        text = Text(f"{self.note}\n\n", style="yellow") if self.note else Text()
        if proc is None:
            text.append("No process yet.", style="dim")
            detail.update(text)
            return
        text.append_text(fmt.process_label(proc))
        text.append("\n")
        for label, value in (
            ("exe", proc.get("exe")),
            ("cmdline", " ".join(str(a) for a in proc.get("cmdline") or [])),
            ("cwd", proc.get("cwd")),
            ("parent", proc.get("ppid")),
            ("started", fmt.when(proc.get("start_time")) if proc.get("start_time") else None),
        ):
            if value not in (None, "", []):
                text.append(f"{label:<8} ", style="dim")
                text.append(f"{value}\n")
        net = proc.get("network") or []
        if net:
            text.append(f"\nNetwork ({len(net)})\n", style="bold")
            for item in net[-15:]:
                host = item.get("hostname") or item.get("remote") or "?"
                text.append(f"  {fmt.clock(item.get('timestamp'))} {host}:{item.get('port')}\n")
        files = proc.get("files") or []
        if files:
            text.append(f"\nFiles ({len(files)})\n", style="bold")
            for item in files[-15:]:
                text.append(f"  {fmt.clock(item.get('timestamp'))} {item.get('op')} {item.get('path')}\n")
        detail.update(text)

    def on_tree_node_highlighted(self, _event: Tree.NodeHighlighted[int]) -> None:
        self.show_detail()


SESSION_COLUMNS = ("Start", "Session", "App", "PID", "Turns", "Tools", "In", "Out", "Cost", "Status")


class SessionsView(Table):
    """Agent sessions, newest first; Enter shows one session's steps."""

    def on_mount(self) -> None:
        self.add_columns(*SESSION_COLUMNS)

    def pull(self, store: EventStore) -> None:
        current = self.selected_id()
        self.clear()
        for s in store.sessions()["sessions"]:
            self.add_row(
                fmt.clock(s.get("start")),
                s["session_id"],
                fmt.app_name(s.get("app")),
                str(s.get("pid") or fmt.DASH),
                str(s.get("turns", 0)),
                str(s.get("tool_calls", 0)),
                fmt.tokens(s.get("input_tokens")),
                fmt.tokens(s.get("output_tokens")),
                fmt.cost(s.get("cost_usd")),
                s.get("status") or fmt.DASH,
                key=s["session_id"],
            )
        if current is not None and current in self.rows:
            self.move_cursor(row=self.get_row_index(current))

    def selected_id(self) -> str | None:
        if self.row_count == 0:
            return None
        key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        return str(key) if key is not None else None
