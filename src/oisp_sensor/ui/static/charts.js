// Charts drawn by hand on <canvas>: time series (bars, lines, areas) with axes, a hover
// read-out, and horizontal percentile bars. Sharp on high-DPI screens; redrawn on resize.
// Labels are drawn with fillText, so untrusted names (apps, models) can never become markup.

import { axisTime } from "./fmt.js";

function css(name, fallback) {
  const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return v || fallback;
}

function theme() {
  return {
    fg: css("--fg-dim", "#8b93a7"),
    grid: css("--grid", "rgba(128,128,128,0.15)"),
    text: css("--fg", "#e6e9ef"),
    tipBg: css("--tip-bg", "rgba(20,23,31,0.94)"),
    font: `11px ${css("--font-ui", "system-ui, sans-serif")}`,
  };
}

/** An axis maximum of `ticks` nice steps (1, 2, 2.5, 5 x 10^n each) that covers `v`. */
export function niceMax(v, ticks = 4) {
  if (!(v > 0)) return ticks;
  const raw = v / ticks;
  const p = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 2.5, 5, 10]) if (raw <= m * p * (1 + 1e-9)) return m * p * ticks;
  return 10 * p * ticks;
}

class CanvasBox {
  constructor(canvas, height) {
    this.canvas = canvas;
    this.height = height;
    this.ctx = canvas.getContext("2d");
    this.width = 0;
    new ResizeObserver(() => this.resize()).observe(canvas.parentElement);
  }

  resize() {
    const w = Math.max(120, Math.floor(this.canvas.parentElement.clientWidth));
    if (w === this.width) return;
    this.width = w;
    const dpr = window.devicePixelRatio || 1;
    this.canvas.width = Math.floor(w * dpr);
    this.canvas.height = Math.floor(this.height * dpr);
    this.canvas.style.width = `${w}px`;
    this.canvas.style.height = `${this.height}px`;
    this.ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    this.draw();
  }

  draw() {}
}

/**
 * Time series on a shared time axis.
 * series: [{key, label, color, kind: "bar"|"line"|"area", stack: bool}]; bars of the
 * series marked `stack` are stacked; `yFormat(v)` formats axis and read-out values.
 */
export class TimeChart extends CanvasBox {
  constructor(canvas, { series, yFormat = String, height = 160 }) {
    super(canvas, height);
    this.series = series;
    this.yFormat = yFormat;
    this.points = [];
    this.bucket = 60;
    this.hover = -1;
    canvas.addEventListener("mousemove", (e) => this.onMove(e));
    canvas.addEventListener("mouseleave", () => {
      this.hover = -1;
      this.draw();
    });
    this.resize();
  }

  setData(points, bucketS) {
    this.points = points || [];
    this.bucket = bucketS || 60;
    this.draw();
  }

  layout() {
    return { left: 52, right: 10, top: 10, bottom: 22 };
  }

  xOf(i, plotW, pad) {
    const n = Math.max(1, this.points.length);
    return pad.left + (i + 0.5) * (plotW / n);
  }

  onMove(e) {
    const pad = this.layout();
    const rect = this.canvas.getBoundingClientRect();
    const x = e.clientX - rect.left - pad.left;
    const plotW = this.width - pad.left - pad.right;
    const n = this.points.length;
    const i = n ? Math.floor((x / plotW) * n) : -1;
    const next = i >= 0 && i < n ? i : -1;
    if (next !== this.hover) {
      this.hover = next;
      this.draw();
    }
  }

  draw() {
    const ctx = this.ctx;
    const w = this.width;
    const h = this.height;
    if (!w) return;
    const t = theme();
    ctx.clearRect(0, 0, w, h);
    ctx.font = t.font;
    const pad = this.layout();
    const plotW = w - pad.left - pad.right;
    const plotH = h - pad.top - pad.bottom;
    const pts = this.points;
    const n = pts.length;
    // y range: stacked bars sum, lines their own maximum
    let max = 0;
    for (const p of pts) {
      let stack = 0;
      for (const s of this.series) {
        const v = Number(p[s.key]) || 0;
        if (s.stack) stack += v;
        else max = Math.max(max, v);
      }
      max = Math.max(max, stack);
    }
    max = niceMax(max);
    const y = (v) => pad.top + plotH - (v / max) * plotH;
    // grid and y labels
    ctx.strokeStyle = t.grid;
    ctx.fillStyle = t.fg;
    ctx.lineWidth = 1;
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (let k = 0; k <= 4; k++) {
      const v = (max * k) / 4;
      const yy = Math.round(y(v)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(pad.left, yy);
      ctx.lineTo(w - pad.right, yy);
      ctx.stroke();
      ctx.fillText(this.yFormat(v), pad.left - 6, yy);
    }
    if (!n) {
      ctx.textAlign = "center";
      ctx.fillText("no data in this window", pad.left + plotW / 2, pad.top + plotH / 2);
      this.canvas.dataset.points = "0";
      return;
    }
    // x labels: about one every 90 px
    const span = n * this.bucket;
    const every = Math.max(1, Math.ceil(n / Math.max(1, Math.floor(plotW / 90))));
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    for (let i = 0; i < n; i += every) {
      ctx.fillText(axisTime(pts[i].t, span), this.xOf(i, plotW, pad), h - pad.bottom + 6);
    }
    const slot = plotW / n;
    const barW = Math.max(1, Math.min(24, slot * 0.8));
    // stacked bars
    for (let i = 0; i < n; i++) {
      let base = 0;
      const x = this.xOf(i, plotW, pad) - barW / 2;
      for (const s of this.series) {
        if (s.kind !== "bar") continue;
        const v = Number(pts[i][s.key]) || 0;
        if (v <= 0) continue;
        const from = s.stack ? base : 0;
        ctx.fillStyle = s.color;
        ctx.globalAlpha = this.hover === -1 || this.hover === i ? 0.9 : 0.55;
        ctx.fillRect(x, y(from + v), barW, y(from) - y(from + v));
        if (s.stack) base += v;
      }
    }
    ctx.globalAlpha = 1;
    // lines and areas (a bucket without calls has no latency: the line breaks there, and
    // a value alone between gaps is drawn as a dot)
    const has = (i, key) => i >= 0 && i < n && pts[i][key] !== null && pts[i][key] !== undefined;
    for (const s of this.series) {
      if (s.kind !== "line" && s.kind !== "area") continue;
      ctx.beginPath();
      let started = false;
      for (let i = 0; i < n; i++) {
        if (!has(i, s.key)) continue;
        const xx = this.xOf(i, plotW, pad);
        const yy = y(Number(pts[i][s.key]) || 0);
        if (!started || (s.kind === "line" && !has(i - 1, s.key))) ctx.moveTo(xx, yy);
        else ctx.lineTo(xx, yy);
        started = true;
      }
      ctx.strokeStyle = s.color;
      ctx.lineWidth = 1.8;
      ctx.lineJoin = "round";
      ctx.stroke();
      if (s.kind === "area" && started) {
        ctx.lineTo(this.xOf(n - 1, plotW, pad), y(0));
        ctx.lineTo(this.xOf(0, plotW, pad), y(0));
        ctx.closePath();
        ctx.globalAlpha = 0.15;
        ctx.fillStyle = s.color;
        ctx.fill();
        ctx.globalAlpha = 1;
      }
      ctx.fillStyle = s.color;
      for (let i = 0; i < n; i++) {
        if (!has(i, s.key) || has(i - 1, s.key) || has(i + 1, s.key)) continue;
        ctx.beginPath();
        ctx.arc(this.xOf(i, plotW, pad), y(Number(pts[i][s.key]) || 0), 3, 0, Math.PI * 2);
        ctx.fill();
      }
    }
    // what was drawn, for tests: buckets with a value in any series
    this.canvas.dataset.points = String(pts.filter((p) => this.series.some((s) => Number(p[s.key]) > 0)).length);
    if (this.hover >= 0) this.drawTip(pts[this.hover], this.xOf(this.hover, plotW, pad), pad, t);
  }

  drawTip(p, x, pad, t) {
    const ctx = this.ctx;
    ctx.strokeStyle = t.fg;
    ctx.setLineDash([3, 3]);
    ctx.beginPath();
    ctx.moveTo(Math.round(x) + 0.5, pad.top);
    ctx.lineTo(Math.round(x) + 0.5, this.height - pad.bottom);
    ctx.stroke();
    ctx.setLineDash([]);
    const lines = [axisTime(p.t, 0)];
    for (const s of this.series) {
      const v = p[s.key];
      lines.push(`${s.label}: ${v === null || v === undefined ? "–" : this.yFormat(Number(v))}`);
    }
    const tw = Math.max(...lines.map((l) => ctx.measureText(l).width)) + 16;
    const th = lines.length * 15 + 8;
    let tx = x + 10;
    if (tx + tw > this.width - 4) tx = x - tw - 10;
    const ty = pad.top + 2;
    ctx.fillStyle = t.tipBg;
    ctx.fillRect(tx, ty, tw, th);
    ctx.textAlign = "left";
    ctx.textBaseline = "top";
    lines.forEach((line, k) => {
      ctx.fillStyle = k === 0 ? t.fg : this.series[k - 1].color;
      ctx.fillText(line, tx + 8, ty + 5 + k * 15);
    });
  }
}

/**
 * Horizontal percentile bars: one row per key, a solid bar to p50 and a lighter one to p95,
 * with the values at the end. rows: [{label, p50, p95, count}].
 */
export class PercentileBars extends CanvasBox {
  constructor(canvas, { color = "#5b8def", format = String, rowHeight = 22 } = {}) {
    super(canvas, 40);
    this.color = color;
    this.format = format;
    this.rowHeight = rowHeight;
    this.rows = [];
    this.resize();
  }

  setData(rows) {
    this.rows = rows || [];
    const h = Math.max(40, this.rows.length * this.rowHeight + 24);
    if (h !== this.height) {
      this.height = h;
      this.width = 0; // force the canvas to be resized for the new height
      this.resize();
    } else this.draw();
  }

  draw() {
    const ctx = this.ctx;
    const w = this.width;
    if (!w) return;
    const t = theme();
    ctx.clearRect(0, 0, w, this.height);
    ctx.font = t.font;
    ctx.textBaseline = "middle";
    if (!this.rows.length) {
      ctx.fillStyle = t.fg;
      ctx.textAlign = "center";
      ctx.fillText("no completed calls yet", w / 2, this.height / 2);
      this.canvas.dataset.points = "0";
      return;
    }
    this.canvas.dataset.points = String(this.rows.length);
    const labelW = Math.min(220, Math.max(90, w * 0.3));
    const valueW = 120;
    const plotW = Math.max(40, w - labelW - valueW - 12);
    const max = niceMax(Math.max(...this.rows.map((r) => r.p95 || r.p50 || 0)));
    const rh = this.rowHeight;
    // scale ticks
    ctx.strokeStyle = t.grid;
    ctx.fillStyle = t.fg;
    ctx.textAlign = "center";
    for (let k = 0; k <= 4; k++) {
      const x = Math.round(labelW + (plotW * k) / 4) + 0.5;
      ctx.beginPath();
      ctx.moveTo(x, 0);
      ctx.lineTo(x, this.rows.length * rh);
      ctx.stroke();
      ctx.fillText(this.format((max * k) / 4), x, this.rows.length * rh + 11);
    }
    this.rows.forEach((r, i) => {
      const yMid = i * rh + rh / 2;
      ctx.textAlign = "right";
      ctx.fillStyle = t.text;
      ctx.fillText(fitText(ctx, r.label, labelW - 10), labelW - 8, yMid);
      const p50 = r.p50 || 0;
      const p95 = Math.max(p50, r.p95 || 0);
      ctx.fillStyle = this.color;
      ctx.globalAlpha = 0.35;
      ctx.fillRect(labelW, yMid - 6, (p95 / max) * plotW, 12);
      ctx.globalAlpha = 1;
      ctx.fillRect(labelW, yMid - 6, (p50 / max) * plotW, 12);
      ctx.textAlign = "left";
      ctx.fillStyle = t.fg;
      ctx.fillText(`${this.format(p50)} / ${this.format(p95)}`, labelW + plotW + 8, yMid);
    });
  }
}

/** Shorten `text` with an ellipsis to fit `width` pixels. */
function fitText(ctx, text, width) {
  const s = String(text ?? "");
  if (ctx.measureText(s).width <= width) return s;
  let lo = 0;
  let hi = s.length;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (ctx.measureText(`${s.slice(0, mid)}…`).width <= width) lo = mid;
    else hi = mid - 1;
  }
  return `${s.slice(0, lo)}…`;
}

/** A tiny sparkline (no axes) for the header totals. */
export function sparkline(canvas, values, color) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || 80;
  const h = canvas.clientHeight || 20;
  canvas.width = w * dpr;
  canvas.height = h * dpr;
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  if (!values.length) return;
  const max = Math.max(1e-9, ...values);
  ctx.beginPath();
  values.forEach((v, i) => {
    const x = values.length === 1 ? w / 2 : (i / (values.length - 1)) * (w - 2) + 1;
    const y = h - 2 - (v / max) * (h - 4);
    if (i === 0) ctx.moveTo(x, y);
    else ctx.lineTo(x, y);
  });
  ctx.strokeStyle = color;
  ctx.lineWidth = 1.5;
  ctx.stroke();
}
