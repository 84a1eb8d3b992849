// Tiny shared command-line parsing for the Node test clients (no dependency needed for this).
// Why: every client takes the same flags, and each must print exactly one JSON line.

/**
 * Parse `--flag` and `--key value` arguments.
 * @param {string[]} argv process.argv.slice(2)
 * @param {Record<string, string | boolean | number>} defaults known options and their defaults
 * @returns {Record<string, string | boolean | number | string[]>}
 */
export function parseArgs(argv, defaults) {
  const out = { ...defaults, header: [] };
  for (let i = 0; i < argv.length; i++) {
    const name = argv[i].replace(/^--/, '');
    if (!(name in out)) throw new Error(`unknown option ${argv[i]}`);
    if (name === 'header') out.header.push(argv[++i]);
    else if (typeof defaults[name] === 'boolean') out[name] = true;
    else if (typeof defaults[name] === 'number') out[name] = Number(argv[++i]);
    else out[name] = argv[++i];
  }
  return out;
}

/**
 * `["name:value", ...]` to a headers object.
 * @param {string[]} list
 * @returns {Record<string, string>}
 */
export function headerObject(list) {
  const headers = {};
  for (const item of list) {
    const at = item.indexOf(':');
    headers[item.slice(0, at).trim()] = item.slice(at + 1).trim();
  }
  return headers;
}

/**
 * Print the single JSON result line and set the exit status (1 when not ok).
 * @param {Record<string, unknown>} report
 */
export function emit(report) {
  process.stdout.write(JSON.stringify(report) + '\n');
  process.exitCode = report.ok ? 0 : 1;
}
