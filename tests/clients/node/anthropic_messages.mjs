// The official `@anthropic-ai/sdk` npm SDK calling messages.create at its default base URL,
// https://api.anthropic.com. Why: the sensor must decode Anthropic's format and SSE events too.
// Trusts the fake's CA via NODE_EXTRA_CA_CERTS; the key comes from ANTHROPIC_API_KEY.
// Usage: node anthropic_messages.mjs [--stream] [--tools] [--model M] [--message TEXT]
//                                    [--max-tokens N] [--max-retries R (default 0)] [--header K:V]
// Prints one JSON line: {"ok", "pid", "results": [{content, usage, stop_reason, ...}]}.
import Anthropic from '@anthropic-ai/sdk';
import { emit, headerObject, parseArgs } from './args.mjs';

const args = parseArgs(process.argv.slice(2), {
  stream: false,
  tools: false,
  model: 'claude-haiku-4-5',
  message: 'Hello from the oisp-sensor tests',
  'max-tokens': 1024,
  'max-retries': 0,
  header: [],
});

const TOOL = {
  name: 'get_weather',
  description: 'Current weather for a city.',
  input_schema: {
    type: 'object',
    properties: { city: { type: 'string' }, unit: { type: 'string', enum: ['celsius', 'fahrenheit'] } },
    required: ['city', 'unit'],
  },
};

const client = new Anthropic({ maxRetries: args['max-retries'], defaultHeaders: headerObject(args.header) });

/** Summarise a final Message object. */
function summarise(msg, extra = {}) {
  return {
    id: msg.id,
    model: msg.model,
    stop_reason: msg.stop_reason,
    usage: { input_tokens: msg.usage.input_tokens, output_tokens: msg.usage.output_tokens },
    content: msg.content.filter((b) => b.type === 'text').map((b) => b.text).join(''),
    tool_uses: msg.content.filter((b) => b.type === 'tool_use').map((b) => ({ id: b.id, name: b.name, input: b.input })),
    ...extra,
  };
}

/** One request; streaming goes through the SDK's event accumulator (finalMessage). */
async function messageOnce(messages) {
  const params = { model: args.model, max_tokens: args['max-tokens'], messages };
  if (args.tools) params.tools = [TOOL];
  if (!args.stream) return summarise(await client.messages.create(params));
  const stream = client.messages.stream(params);
  const events = [];
  stream.on('streamEvent', (event) => events.push(event.type));
  const final = await stream.finalMessage();
  return summarise(final, { events });
}

async function main() {
  const report = { ok: true, pid: process.pid, sdk: 'anthropic-node', node: process.version, results: [] };
  const t0 = performance.now();
  try {
    const messages = [{ role: 'user', content: args.message }];
    const first = await messageOnce(messages);
    report.results.push(first);
    if (args.tools && first.tool_uses.length) {
      messages.push({
        role: 'assistant',
        content: [
          { type: 'text', text: first.content },
          ...first.tool_uses.map((t) => ({ type: 'tool_use', id: t.id, name: t.name, input: t.input })),
        ],
      });
      messages.push({
        role: 'user',
        content: first.tool_uses.map((t) => ({
          type: 'tool_result', tool_use_id: t.id, content: JSON.stringify({ temperature: 21, condition: 'sunny' }),
        })),
      });
      report.results.push(await messageOnce(messages));
    }
  } catch (err) {
    report.ok = false;
    report.error = err instanceof Anthropic.APIError
      ? { status_code: err.status, class: err.constructor.name, message: err.message, body: err.error, request_id: err.requestID ?? null }
      : { class: err?.constructor?.name, message: String(err), cause: String(err?.cause ?? '') };
  }
  report.elapsed_s = (performance.now() - t0) / 1000;
  report.n_requests = report.results.length;
  emit(report);
}

await main();
