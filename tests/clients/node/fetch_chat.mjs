// Node 20's global fetch (undici) POSTing to https://api.openai.com/v1/chat/completions.
// Why: a client with no SDK at all, built into Node, with its own HTTP/1.1 stack and Node's
// statically linked OpenSSL: the sensor must handle it as well as the SDKs.
// Trusts the fake's CA via NODE_EXTRA_CA_CERTS; the key comes from OPENAI_API_KEY.
// Usage: node fetch_chat.mjs [--stream] [--model M] [--message TEXT] [--n-requests N] [--header K:V]
// Prints one JSON line: {"ok", "pid", "status", "results": [{content, usage, ...}]}.
import { emit, headerObject, parseArgs } from './args.mjs';

const args = parseArgs(process.argv.slice(2), {
  stream: false,
  model: 'gpt-4o-mini',
  message: 'Hello from the oisp-sensor tests',
  'n-requests': 1,
  url: 'https://api.openai.com/v1/chat/completions',
  header: [],
});

/** Collect an OpenAI SSE stream: text, usage and finish reason. */
async function readStream(body) {
  const decoder = new TextDecoder();
  let buffer = '';
  const pieces = [];
  const out = { chunks: 0, usage: null, finish_reason: null, done: false, id: null, model: null };
  for await (const bytes of body) {
    buffer += decoder.decode(bytes, { stream: true });
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of event.split('\n')) {
        if (!line.startsWith('data: ')) continue;
        const data = line.slice(6);
        if (data === '[DONE]') { out.done = true; continue; }
        const chunk = JSON.parse(data);
        out.chunks += 1;
        out.id = chunk.id;
        out.model = chunk.model;
        if (chunk.usage) out.usage = chunk.usage;
        for (const choice of chunk.choices) {
          if (choice.delta.content) pieces.push(choice.delta.content);
          if (choice.finish_reason) out.finish_reason = choice.finish_reason;
        }
      }
    }
  }
  out.content = pieces.join('');
  return out;
}

async function main() {
  const report = { ok: true, pid: process.pid, client: 'node-fetch', node: process.version, results: [] };
  const body = { model: args.model, messages: [{ role: 'user', content: args.message }] };
  if (args.stream) Object.assign(body, { stream: true, stream_options: { include_usage: true } });
  const t0 = performance.now();
  try {
    for (let i = 0; i < args['n-requests']; i++) {
      const res = await fetch(args.url, {
        method: 'POST',
        headers: {
          'Content-Type': 'application/json',
          Authorization: `Bearer ${process.env.OPENAI_API_KEY}`,
          ...headerObject(args.header),
        },
        body: JSON.stringify(body),
      });
      report.status = res.status;
      if (!res.ok) {
        report.ok = false;
        report.error = { status_code: res.status, body: await res.json() };
        break;
      }
      if (args.stream) {
        report.results.push(await readStream(res.body));
      } else {
        const data = await res.json();
        const choice = data.choices[0];
        report.results.push({
          id: data.id, model: data.model, content: choice.message.content,
          finish_reason: choice.finish_reason, usage: data.usage,
        });
      }
    }
  } catch (err) {
    report.ok = false;
    report.error = { message: String(err), cause: String(err.cause ?? '') };
  }
  report.elapsed_s = (performance.now() - t0) / 1000;
  report.n_requests = report.results.length;
  if (report.results.length > 20) report.results = [report.results[0], report.results.at(-1)];
  emit(report);
}

await main();
