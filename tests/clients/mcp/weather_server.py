"""A real MCP server (the `mcp` package) over HTTPS, for the sensor's end-to-end tests.

    python weather_server.py PORT CERT KEY streamable|sse
    python weather_server.py stdio          (MCP's stdio transport: JSON-RPC on stdin/stdout)

Tools: `get_weather(city)` answers "sunny in <city>"; `fail(reason)` raises, so the
client gets a result with `isError` true.
"""

from __future__ import annotations

import sys

import uvicorn
from mcp.server.mcpserver import MCPServer

server = MCPServer("weather-e2e")


@server.tool()
def get_weather(city: str) -> str:
    """Weather for a city."""
    return f"sunny in {city}"


@server.tool()
def fail(reason: str) -> str:
    """Always fails."""
    raise ValueError(reason)


def main() -> None:
    if sys.argv[1:] == ["stdio"]:
        server.run("stdio")
        return
    port, cert, key, transport = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    app = server.streamable_http_app() if transport == "streamable" else server.sse_app()
    uvicorn.run(app, host="127.0.0.1", port=port, ssl_certfile=cert, ssl_keyfile=key, log_level="warning")


if __name__ == "__main__":
    main()
