// The Export seed's snippet, run as is in Node 20 (no global WebSocket before Node 22:
// the `ws` package provides the same browser API). Prints each event's type and exits
// after argv[3] events.
import WebSocket from "ws";

const url = process.argv[2] ?? "ws://localhost:7777/ws/events";
const want = Number(process.argv[3] ?? 1);
let seen = 0;

const ws = new WebSocket(url);

ws.onmessage = (event) => {
  const data = JSON.parse(event.data);
  console.log("Event:", data.event_type, data.event_id);
  seen += 1;
  if (seen >= want) ws.close();
};
ws.onopen = () => console.log("open");
ws.onerror = (err) => {
  console.error("error", err.message);
  process.exit(1);
};
ws.onclose = () => process.exit(0);
