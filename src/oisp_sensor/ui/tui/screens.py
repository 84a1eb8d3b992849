"""Screens opened with Enter: one exchange, one agent session. Esc goes back."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from ..store import EventStore
from . import exchange as exv
from . import format as fmt
from .views import Table


class ExchangeScreen(Screen[None]):
    """Request messages, response, tool calls and timings of one AI call, as redacted.
    Follows the store while the call is still pending (the response may arrive later)."""

    BINDINGS = [Binding("escape", "back", "Back")]

    def __init__(self, store: EventStore, request_id: str) -> None:
        super().__init__()
        self.store = store
        self.request_id = request_id
        self._seen = -1
        self.exchange: dict[str, Any] | None = None

    def compose(self) -> Any:
        yield Static(id="screen-title")
        with VerticalScroll(id="exchange-scroll"):
            yield Static(id="exchange")
        yield Footer()

    def on_mount(self) -> None:
        self.refresh_view()
        self.query_one("#exchange-scroll").focus()
        self.set_interval(0.5, self.refresh_view)

    def refresh_view(self) -> None:
        if self.store.version == self._seen:
            return
        self._seen = self.store.version
        ex = self.store.exchange(self.request_id)
        self.exchange = ex
        title = Text(f" Exchange {self.request_id}", style="bold")
        if ex is None:
            self.query_one("#exchange", Static).update(
                Text("This call is no longer kept in memory (older events scroll out).", style="yellow")
            )
        else:
            self.query_one("#exchange", Static).update(exv.render(ex))
        self.query_one("#screen-title", Static).update(title)

    def action_back(self) -> None:
        self.dismiss()


def exchange_of(store: EventStore, event_id: str | None) -> str | None:
    """The exchange a session step belongs to: a turn's own, or the call a tool step is
    linked to (the request that offered the call, or that carried its result back)."""
    if not event_id:
        return None
    if store.exchange(event_id) is not None:
        return event_id
    env = store.event(event_id) or {}
    data = env.get("data") if isinstance(env.get("data"), dict) else {}
    for key in ("request_event_id", "related_event_id"):
        linked = data.get(key)
        if isinstance(linked, str) and store.exchange(linked) is not None:
            return linked
    return None


class SessionScreen(Screen[None]):
    """The chain of model turns and tool calls of one agent run; Enter opens a turn."""

    BINDINGS = [Binding("escape", "back", "Back")]

    def __init__(self, store: EventStore, session_id: str) -> None:
        super().__init__()
        self.store = store
        self.session_id = session_id
        self._seen = -1

    def compose(self) -> Any:
        yield Static(id="screen-title")
        yield Table(id="steps")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#steps", Table)
        table.add_columns("Time", "Step", "What")
        self.refresh_view()
        table.focus()
        self.set_interval(0.5, self.refresh_view)

    def refresh_view(self) -> None:
        if self.store.version == self._seen:
            return
        self._seen = self.store.version
        body = self.store.session(self.session_id)
        title = Text(f" Agent session {self.session_id}", style="bold")
        table = self.query_one("#steps", Table)
        if body is None:
            title.append("  (no longer kept)", style="yellow")
            self.query_one("#screen-title", Static).update(title)
            return
        s = body["session"]
        title.append(
            f"  {fmt.app_name(s.get('app'))} pid {s.get('pid')} · {s.get('turns')} turns · "
            f"{s.get('tool_calls')} tool calls · {fmt.tokens(s.get('input_tokens'))}/"
            f"{fmt.tokens(s.get('output_tokens'))} tok · {fmt.cost(s.get('cost_usd'))} · {s.get('status')}",
            style="dim",
        )
        self.query_one("#screen-title", Static).update(title)
        row = table.cursor_row
        table.clear()
        for step in body["steps"]:
            event = step.get("event") or {}
            table.add_row(
                fmt.clock(step.get("timestamp")),
                step.get("kind") or "?",
                step.get("summary") or "",
                key=str(event.get("event_id") or step.get("seq")),
            )
        if table.row_count:
            table.move_cursor(row=min(row, table.row_count - 1))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()  # handled here, not by the app's views
        found = exchange_of(self.store, event.row_key.value)
        if found is not None:
            self.app.push_screen(ExchangeScreen(self.store, found))
        else:
            self.notify("This step belongs to no AI call kept in memory.", severity="warning")

    def action_back(self) -> None:
        self.dismiss()
