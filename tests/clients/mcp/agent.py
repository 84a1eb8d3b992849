"""An agent loop: the model (OpenAI SDK) asks for a tool, the agent runs it on an MCP server.

    python agent.py URL auto|legacy|sse|stdio CA_FILE

In stdio mode URL is ignored: the agent starts weather_server.py itself and talks to it
over its stdin/stdout, as agents run local MCP servers.

Prints one JSON line: pid, the model's tool call id, what the MCP tool calls returned and the
model's final answer. The MCP client (the `mcp` package, over httpx2) trusts CA_FILE
explicitly: httpx2 does not read SSL_CERT_FILE.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import sys
from typing import Any

import httpx2
import openai
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city.",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]  # fmt: skip


def transport(url: str, mode: str, ca: str) -> Any:
    context = ssl.create_default_context(cafile=ca)

    def factory(headers: Any = None, timeout: Any = None, auth: Any = None) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(verify=context, headers=headers, timeout=timeout or 30, auth=auth)

    if mode == "stdio":
        server = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weather_server.py")
        return StdioServerParameters(command=sys.executable, args=[server, "stdio"])
    if mode == "sse":
        return sse_client(url, httpx_client_factory=factory)
    return streamable_http_client(url, http_client=factory())


async def run_tools(url: str, mode: str, ca: str, city: str) -> dict[str, Any]:
    kwargs = {"mode": "legacy"} if mode in ("legacy", "sse") else {}
    async with Client(transport(url, mode, ca), **kwargs) as client:
        listed = await client.list_tools()
        weather = await client.call_tool("get_weather", {"city": city})
        failed = await client.call_tool("fail", {"reason": "on purpose"})
    return {"tools": sorted(t.name for t in listed.tools), "weather": weather.content[0].text,
            "failed": failed.is_error}  # fmt: skip


def main() -> None:
    url, mode, ca = sys.argv[1], sys.argv[2], sys.argv[3]
    model = openai.OpenAI(max_retries=0)
    messages: list[Any] = [{"role": "user", "content": f"mcp agent {mode}"}]
    first = model.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=TOOLS)
    call = first.choices[0].message.tool_calls[0]
    city = json.loads(call.function.arguments)["city"]
    results = asyncio.run(run_tools(url, mode, ca, city))
    messages += [first.choices[0].message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": results["weather"]}]  # fmt: skip
    final = model.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=TOOLS)
    print(json.dumps({"pid": os.getpid(), "call_id": call.id, **results,
                      "answer": final.choices[0].message.content}))  # fmt: skip


if __name__ == "__main__":
    main()
