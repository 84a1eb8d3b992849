// Formatting of numbers, times and costs for display (compact, fixed-width friendly).

const intFmt = new Intl.NumberFormat("en-US");

export function num(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return "–";
  return intFmt.format(n);
}

/** 1234 -> "1.2k", 1234567 -> "1.2M" (for tight cells and axis labels). */
export function compact(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return "–";
  const a = Math.abs(n);
  if (a >= 1e9) return `${trim(n / 1e9)}G`;
  if (a >= 1e6) return `${trim(n / 1e6)}M`;
  if (a >= 1e4) return `${trim(n / 1e3)}k`;
  if (Number.isInteger(n)) return String(n);
  return trim(n);
}

function trim(x) {
  const s = Math.abs(x) >= 100 ? x.toFixed(0) : Math.abs(x) >= 10 ? x.toFixed(1) : x.toFixed(2);
  return s.replace(/\.0+$/, "").replace(/(\.\d*[1-9])0+$/, "$1");
}

/** US dollars: small costs keep significant digits ($0.000123), larger ones cents. */
export function usd(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return "–";
  if (n === 0) return "$0";
  const a = Math.abs(n);
  if (a >= 100) return `$${intFmt.format(Math.round(n))}`;
  if (a >= 1) return `$${n.toFixed(2)}`;
  if (a >= 0.01) return `$${n.toFixed(3)}`;
  return `$${n.toPrecision(2)}`;
}

/** A cost for a narrow cell: at most 8 characters ("<$0.0001" below a hundredth of a cent). */
export function usdCell(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return "–";
  if (n > 0 && n < 0.0001) return "<$0.0001";
  if (n > 0 && n < 0.01) return `$${n.toFixed(4)}`;
  return usd(n);
}

/** Milliseconds: "830 ms", "4.2 s", "3m 05s". */
export function ms(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return "–";
  if (n === 0) return "0 ms";
  if (n < 1) return `${n.toFixed(2)} ms`;
  if (n < 1000) return `${Math.round(n)} ms`;
  if (n < 60_000) return `${(n / 1000).toFixed(n < 10_000 ? 2 : 1)} s`;
  const m = Math.floor(n / 60_000);
  const s = Math.round((n % 60_000) / 1000);
  return `${m}m ${String(s).padStart(2, "0")}s`;
}

export function bytes(n) {
  if (n === null || n === undefined) return "–";
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/** Seconds of uptime: "2h 03m", "45 s". */
export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 60) return `${Math.round(seconds)} s`;
  const m = Math.floor(seconds / 60);
  if (m < 60) return `${m}m ${String(Math.round(seconds % 60)).padStart(2, "0")}s`;
  const hours = Math.floor(m / 60);
  if (hours < 48) return `${hours}h ${String(m % 60).padStart(2, "0")}m`;
  return `${Math.floor(hours / 24)}d ${hours % 24}h`;
}

/** Parse an OISP timestamp (RFC 3339, microseconds) to epoch milliseconds. */
export function tsMs(ts) {
  if (ts === null || ts === undefined) return NaN;
  if (typeof ts === "number") return ts > 1e12 ? ts : ts * 1000;
  return Date.parse(ts);
}

const pad = (n, w = 2) => String(n).padStart(w, "0");

/** Local wall-clock time with milliseconds: "14:03:07.123". */
export function clock(ts) {
  const t = tsMs(ts);
  if (Number.isNaN(t)) return "–";
  const d = new Date(t);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** Local date and time: "2026-12-03 14:03:07". */
export function dateTime(ts) {
  const t = tsMs(ts);
  if (Number.isNaN(t)) return "–";
  const d = new Date(t);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** "12 s ago", "3 min ago". */
export function ago(ts, now = Date.now()) {
  const t = tsMs(ts);
  if (Number.isNaN(t)) return "";
  const s = Math.max(0, (now - t) / 1000);
  if (s < 60) return `${Math.round(s)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

/** Axis label for an epoch-seconds time, precision chosen from the span shown. */
export function axisTime(epochS, spanS) {
  const d = new Date(epochS * 1000);
  if (spanS > 2 * 86400) return `${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}h`;
  if (spanS > 600) return `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}
