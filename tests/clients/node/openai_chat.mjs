// The official `openai` npm SDK (6.x) calling chat.completions at its default base URL,
// https://api.openai.com/v1. Why: the most common Node AI client; the sensor must decode it.
// Trusts the fake's CA via NODE_EXTRA_CA_CERTS; the key comes from OPENAI_API_KEY.
// Usage: node openai_chat.mjs [--stream] [--tools] [--model M] [--message TEXT] [--n-requests N]
//                             [--max-retries R (default 0)] [--header K:V]
// Prints one JSON line: {"ok", "pid", "results": [{content, usage, tool_calls, ...}]}.
import OpenAI from 'openai';
import { emit, headerObject, parseArgs } from './args.mjs';

const args = parseArgs(process.argv.slice(2), {
  stream: false,
  tools: false,
  model: 'gpt-4o-mini',
  message: 'Hello from the oisp-sensor tests',
  'n-requests': 1,
  'max-retries': 0,
  header: [],
});

const TOOL = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Current weather for a city.',
    parameters: {
      type: 'object',
      properties: { city: { type: 'string' }, unit: { type: 'string', enum: ['celsius', 'fahrenheit'] } },
      required: ['city', 'unit'],
    },
  },
};

const client = new OpenAI({ maxRetries: args['max-retries'], defaultHeaders: headerObject(args.header) });

/** One request, summarised identically for streamed and plain answers. */
async function chatOnce(messages) {
  const params = { model: args.model, messages };
  if (args.tools) params.tools = [TOOL];
  if (!args.stream) {
    const res = await client.chat.completions.create(params);
    const choice = res.choices[0];
    return {
      id: res.id, model: res.model, content: choice.message.content, finish_reason: choice.finish_reason,
      usage: res.usage,
      tool_calls: (choice.message.tool_calls ?? []).map((c) => ({ id: c.id, name: c.function.name, arguments: c.function.arguments })),
    };
  }
  const stream = await client.chat.completions.create({ ...params, stream: true, stream_options: { include_usage: true } });
  const out = { chunks: 0, usage: null, finish_reason: null, id: null, model: null };
  const pieces = [];
  const calls = new Map();
  for await (const chunk of stream) {
    out.chunks += 1;
    out.id = chunk.id;
    out.model = chunk.model;
    if (chunk.usage) out.usage = chunk.usage;
    for (const choice of chunk.choices) {
      if (choice.delta.content) pieces.push(choice.delta.content);
      for (const tc of choice.delta.tool_calls ?? []) {
        const slot = calls.get(tc.index) ?? { id: null, name: '', arguments: '' };
        if (tc.id) slot.id = tc.id;
        slot.name += tc.function?.name ?? '';
        slot.arguments += tc.function?.arguments ?? '';
        calls.set(tc.index, slot);
      }
      if (choice.finish_reason) out.finish_reason = choice.finish_reason;
    }
  }
  out.content = pieces.length ? pieces.join('') : null;
  out.tool_calls = [...calls.values()];
  return out;
}

async function main() {
  const report = { ok: true, pid: process.pid, sdk: 'openai-node', node: process.version, results: [] };
  const t0 = performance.now();
  try {
    for (let i = 0; i < args['n-requests']; i++) {
      const messages = [{ role: 'user', content: args.message }];
      const first = await chatOnce(messages);
      report.results.push(first);
      if (args.tools && first.tool_calls.length) {
        messages.push({
          role: 'assistant', content: null,
          tool_calls: first.tool_calls.map((c) => ({ id: c.id, type: 'function', function: { name: c.name, arguments: c.arguments } })),
        });
        for (const c of first.tool_calls) {
          messages.push({ role: 'tool', tool_call_id: c.id, content: JSON.stringify({ temperature: 21, condition: 'sunny' }) });
        }
        report.results.push(await chatOnce(messages));
      }
    }
  } catch (err) {
    report.ok = false;
    report.error = err instanceof OpenAI.APIError
      ? { status_code: err.status, class: err.constructor.name, message: err.message, body: err.error, request_id: err.requestID ?? null }
      : { class: err?.constructor?.name, message: String(err), cause: String(err?.cause ?? '') };
  }
  report.elapsed_s = (performance.now() - t0) / 1000;
  report.n_requests = report.results.length;
  if (report.results.length > 20) report.results = [report.results[0], report.results.at(-1)];
  emit(report);
}

await main();
