"""The Textual app: a status line, four views (timeline, totals, processes, agent
sessions), the `/` filter line and the footer with the keys."""

from __future__ import annotations

import threading
import time
from typing import Any

from rich.text import Text
from textual.app import App
from textual.binding import Binding
from textual.widgets import ContentSwitcher, DataTable, Footer, Input, Static, Tree

from ..store import EventStore, QueryError
from . import filters as flt
from .screens import ExchangeScreen, SessionScreen
from .views import ProcessView, SessionsView, StatsView, Timeline

VIEWS = ("timeline", "stats", "processes", "sessions")
# The heavier views (whole-store aggregates, the process table) refresh at most this often.
SLOW_REFRESH_S = 1.0

CSS = """
#status { height: 1; background: $panel; color: $text; padding: 0 1; }
#screen-title { height: 1; background: $panel; padding: 0 1; }
#views { height: 1fr; }
#filter { dock: bottom; display: none; margin-bottom: 1; }
#filter.shown { display: block; }
.caption { margin-top: 1; text-style: bold; color: $accent; }
#spark { height: 3; margin: 0 1; }
#stats DataTable { height: auto; max-height: 16; }
#proc-tree { width: 3fr; }
#proc-side { width: 2fr; border-left: solid $panel-lighten-2; padding: 0 1; }
#exchange-scroll { padding: 0 1; }
"""


class SensorTui(App[None]):
    """The terminal UI over an EventStore; see the package docstring for how to run it."""

    CSS = CSS
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [
        Binding("t", "view('timeline')", "Timeline"),
        Binding("s", "view('stats')", "Stats"),
        Binding("p", "view('processes')", "Processes"),
        Binding("a", "view('sessions')", "Agents"),
        Binding("slash", "filter", "Filter"),
        Binding("e", "errors", "Errors only"),
        Binding("escape", "clear_filter", "Clear filter"),
        Binding("q", "quit", "Quit"),
        # A sensor is stopped with Ctrl+C: keep that working inside the UI too.
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
    ]

    def __init__(
        self,
        store: EventStore,
        title: str | None = None,
        stop: threading.Event | None = None,
        poll_s: float = 0.25,
        max_rows: int = 500,
    ) -> None:
        super().__init__()
        self.max_rows = max_rows  # timeline rows kept on screen (the store keeps far more)
        self.store = store
        self.title = title or f"OISP sensor ({store.mode})"
        self._stop = stop
        self.poll_s = poll_s
        self.filters: dict[str, Any] = {}
        self.current_view = "timeline"
        self._seen = -1
        self._slow_at: dict[str, float] = {}

    def compose(self) -> Any:
        yield Static(id="status")
        with ContentSwitcher(initial="timeline", id="views"):
            yield Timeline(max_rows=self.max_rows, id="timeline")
            yield StatsView(id="stats")
            yield ProcessView(id="processes")
            yield SessionsView(id="sessions")
        yield Input(
            placeholder="filter: provider:openai model:gpt-4o app:X pid:N status:error text", id="filter"
        )
        yield Footer()

    def on_mount(self) -> None:
        self.timeline.focus()
        self.poll()
        self.set_interval(self.poll_s, self.poll)

    @property
    def timeline(self) -> Timeline:
        return self.query_one("#timeline", Timeline)

    # ---- keeping up with the store -----------------------------------------------------------

    def poll(self) -> None:
        """Called a few times a second: quit when the sensor is stopping, refresh on change."""
        if self._stop is not None and self._stop.is_set():
            self.exit()
            return
        version = self.store.version
        if version == self._seen:
            return
        self._seen = version
        self.refresh_views()

    def refresh_views(self, force: bool = False) -> None:
        try:
            self.timeline.pull(self.store, self.filters)  # cheap: only what changed
            if self.current_view != "timeline":
                now = time.monotonic()
                if force or now - self._slow_at.get(self.current_view, 0.0) >= SLOW_REFRESH_S:
                    self._slow_at[self.current_view] = now
                    self._pull_view(self.current_view)
                else:
                    self._seen = -1  # not yet: look again at the next poll
        except QueryError as exc:
            self.notify(str(exc), severity="error")
        self.update_status()

    def _pull_view(self, name: str) -> None:
        if name == "stats":
            self.query_one("#stats", StatsView).pull(self.store, self.filters)
        elif name == "processes":
            self.query_one("#processes", ProcessView).pull(self.store)
        elif name == "sessions":
            self.query_one("#sessions", SessionsView).pull(self.store)

    def update_status(self) -> None:
        store = self.store
        text = Text()
        text.append(str(self.title), style="bold")
        text.append(f"  {store.counts['events']} events · {self.timeline.total} AI calls", style="")
        if self.filters:
            text.append(f"  filter: {flt.describe(self.filters)}", style="yellow")
        text.append(f"  [{self.current_view}]", style="dim")
        self.query_one("#status", Static).update(text)

    # ---- actions ---------------------------------------------------------------------------------

    def action_view(self, name: str) -> None:
        if name not in VIEWS:
            return
        self._to_views()
        self.current_view = name
        self.query_one("#views", ContentSwitcher).current = name
        self._focus_view()
        self.refresh_views(force=True)

    def _to_views(self) -> None:
        """From an exchange or a session (pushed screens): back to the views."""
        while len(self.screen_stack) > 1:
            self.pop_screen()

    def action_filter(self) -> None:
        self._to_views()
        box = self.query_one("#filter", Input)
        box.value = flt.describe(self.filters)
        box.add_class("shown")
        box.focus()

    def action_errors(self) -> None:
        self._to_views()
        filters = dict(self.filters)
        if filters.get("status") == "error":
            filters.pop("status")
        else:
            filters["status"] = "error"
        self.apply_filters(filters)

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        if box.has_class("shown"):
            self._hide_filter()
            return
        if self.filters:
            self.apply_filters({})

    def apply_filters(self, filters: dict[str, Any]) -> None:
        self.filters = filters
        try:
            self.timeline.reload(self.store, filters)
        except QueryError as exc:
            self.notify(str(exc), severity="error")
        self.refresh_views(force=True)

    def _hide_filter(self) -> None:
        self.query_one("#filter", Input).remove_class("shown")
        self._focus_view()

    def _focus_view(self) -> None:
        name = self.current_view
        self.query_one("#proc-tree" if name == "processes" else f"#{name}").focus()

    # ---- events from the widgets -----------------------------------------------------------------

    def on_input_submitted(self, event: Input.Submitted) -> None:
        try:
            filters = flt.parse(event.value)
        except flt.FilterError as exc:
            self.notify(str(exc), severity="error")
            return
        self._hide_filter()
        self.apply_filters(filters)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        key = event.row_key.value
        if key is None:
            return
        if event.data_table.id == "timeline":
            self.push_screen(ExchangeScreen(self.store, str(key)))
        elif event.data_table.id == "sessions":
            self.push_screen(SessionScreen(self.store, str(key)))

    def on_tree_node_selected(self, event: Tree.NodeSelected[int]) -> None:
        """Enter on a process: its AI calls in the timeline."""
        pid = event.node.data
        if pid is None:
            return
        self.apply_filters({**{k: v for k, v in self.filters.items() if k != "pid"}, "pid": pid})
        self.action_view("timeline")
