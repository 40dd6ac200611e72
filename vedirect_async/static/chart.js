// A small time-series line chart on <canvas> (history plus live points), and DailyBars below.
// Points are [epoch ms, value|null]; null breaks the line. The chart keeps only the points of
// its time window (and at most maxPoints), so a page left open for weeks stays small.
"use strict";

class LineChart {
  constructor(canvas, options) {
    this.canvas = canvas;
    this.unit = options.unit || "";
    this.color = options.color || "#4fb3ff";
    this.decimals = options.decimals === undefined ? 2 : options.decimals;
    this.windowMs = options.windowMs || 6 * 3600 * 1000;
    this.maxPoints = options.maxPoints || 4000;
    this.points = [];
    this.liveCount = 0;
    this._pending = false;
    const redraw = () => this.draw();
    if (typeof ResizeObserver === "function") {
      new ResizeObserver(redraw).observe(canvas);
    } else {
      window.addEventListener("resize", redraw);
    }
  }

  // Replace everything (a history answer). t in ms, oldest first.
  setData(times, values) {
    this.points = [];
    for (let i = 0; i < times.length; i++) {
      this.points.push([times[i], values[i] === undefined ? null : values[i]]);
    }
    this._trim();
    this.schedule();
  }

  // One live value. Points closer than the window's resolution replace the previous live
  // point, so the line always ends at the newest value without growing per reading.
  push(t, value, live = true) {
    const n = this.points.length;
    const spacing = this.windowMs / this.maxPoints;
    if (n && t <= this.points[n - 1][0]) {
      if (t === this.points[n - 1][0]) this.points[n - 1][1] = value;
      this.schedule();
      return;
    }
    if (n >= 2 && this._lastLive && t - this.points[n - 2][0] < spacing) {
      this.points[n - 1] = [t, value];
    } else {
      this.points.push([t, value]);
    }
    this._lastLive = live;
    if (live) this.liveCount++;
    this._trim();
    this.schedule();
  }

  setWindow(ms) {
    this.windowMs = ms;
    this.schedule();
  }

  _trim() {
    const newest = this.points.length ? this.points[this.points.length - 1][0] : 0;
    const oldest = newest - 24 * 3600 * 1000; // keep a day, whatever window is shown
    let cut = 0;
    while (cut < this.points.length && this.points[cut][0] < oldest) cut++;
    if (this.points.length - cut > this.maxPoints) cut = this.points.length - this.maxPoints;
    if (cut) this.points.splice(0, cut);
  }

  schedule() {
    if (this._pending) return;
    this._pending = true;
    window.requestAnimationFrame(() => {
      this._pending = false;
      this.draw();
    });
  }

  draw() {
    const canvas = this.canvas;
    const width = canvas.clientWidth;
    const height = canvas.clientHeight;
    if (!width || !height) return;
    const ratio = window.devicePixelRatio || 1;
    if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(height * ratio);
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    const style = getComputedStyle(document.documentElement);
    const muted = style.getPropertyValue("--muted").trim() || "#888";
    const grid = style.getPropertyValue("--grid").trim() || "#333";
    ctx.font = "11px system-ui, sans-serif";

    const now = Date.now();
    const newest = this.points.length ? this.points[this.points.length - 1][0] : now;
    const x1 = Math.max(now, newest);
    const x0 = x1 - this.windowMs;
    const visible = this.points.filter((p) => p[0] >= x0 && p[1] !== null);
    if (!visible.length) {
      ctx.fillStyle = muted;
      ctx.fillText("no data yet", 8, height / 2);
      return;
    }
    let lo = Math.min(...visible.map((p) => p[1]));
    let hi = Math.max(...visible.map((p) => p[1]));
    if (hi - lo < 1e-9) {
      const pad = Math.abs(hi) * 0.01 || 1;
      lo -= pad;
      hi += pad;
    }
    const ticks = niceTicks(lo, hi, 4);
    lo = Math.min(lo, ticks[0]);
    hi = Math.max(hi, ticks[ticks.length - 1]);

    const labelWidth = Math.max(...ticks.map((v) => ctx.measureText(formatTick(v, ticks)).width));
    const { left, right, top, bottom, plotW, plotH } = plotArea(width, height, labelWidth);
    const sx = (t) => left + ((t - x0) / (x1 - x0)) * plotW;
    const sy = (v) => top + (1 - (v - lo) / (hi - lo)) * plotH;

    // value grid and labels
    ctx.strokeStyle = grid;
    ctx.lineWidth = 1;
    ctx.fillStyle = muted;
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (const v of ticks) {
      const y = Math.round(sy(v)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(left, y);
      ctx.lineTo(width - right, y);
      ctx.stroke();
      ctx.fillText(formatTick(v, ticks), left - 4, y);
    }
    // time labels
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    const step = timeStep(this.windowMs);
    const offset = new Date(x0).getTimezoneOffset() * 60000;
    for (let t = Math.ceil((x0 - offset) / step) * step + offset; t <= x1; t += step) {
      const x = sx(t);
      if (x < left + 12 || x > width - right - 12) continue;
      const d = new Date(t);
      const text = String(d.getHours()).padStart(2, "0") + ":" + String(d.getMinutes()).padStart(2, "0");
      ctx.fillText(text, x, height - bottom + 4);
    }

    // the line (gaps where values are missing or points are far apart)
    ctx.save();
    ctx.beginPath();
    ctx.rect(left, top - 2, plotW, plotH + 4);
    ctx.clip();
    const gap = Math.max(this.windowMs / 60, 5 * 60 * 1000);
    ctx.strokeStyle = this.color;
    ctx.lineWidth = 1.75;
    ctx.lineJoin = "round";
    ctx.beginPath();
    let drawing = false;
    let lastT = null;
    for (const [t, v] of this.points) {
      if (t < x0 - gap) continue;
      if (v === null || (lastT !== null && t - lastT > gap)) drawing = false;
      if (v !== null) {
        if (drawing) ctx.lineTo(sx(t), sy(v));
        else ctx.moveTo(sx(t), sy(v));
        drawing = true;
      }
      lastT = t;
    }
    ctx.stroke();
    ctx.restore();

    // the newest value
    const last = visible[visible.length - 1];
    ctx.fillStyle = this.color;
    ctx.beginPath();
    ctx.arc(sx(last[0]), sy(last[1]), 3, 0, 2 * Math.PI);
    ctx.fill();
  }
}

// The plot area of a chart width x height whose value labels (left) are labelWidth wide.
function plotArea(width, height, labelWidth) {
  const left = Math.ceil(labelWidth) + 8;
  const right = 6;
  const top = 6;
  const bottom = 18;
  return { left, right, top, bottom, plotW: width - left - right, plotH: height - top - bottom };
}

function niceTicks(lo, hi, count) {
  const raw = (hi - lo) / count;
  const magnitude = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) || raw;
  const ticks = [];
  for (let v = Math.floor(lo / step) * step; v <= hi + step * 0.5; v += step) {
    ticks.push(Math.round(v / step) * step);
    if (ticks.length > 12) break;
  }
  return ticks;
}

function formatTick(value, ticks) {
  const step = ticks.length > 1 ? Math.abs(ticks[1] - ticks[0]) : 1;
  const decimals = Math.max(0, Math.min(3, -Math.floor(Math.log10(step) + 1e-9)));
  return value.toFixed(decimals);
}

function timeStep(windowMs) {
  const minute = 60000;
  const steps = [5, 10, 15, 30, 60, 120, 180, 360, 720].map((m) => m * minute);
  return steps.find((s) => windowMs / s <= 6) || 24 * 60 * minute;
}

window.LineChart = LineChart;

// A bar chart of an MPPT's daily yield (GET /api/daily), drawn as SVG: one slot per day of the
// device's history (today and the 30 days before), oldest left, today right and paler (the
// day is not over). Each bar's <title> gives its date and value.
const DAILY_SLOTS = 31;

class DailyBars {
  constructor(svg, options = {}) {
    this.svg = svg;
    this.unit = options.unit || "kWh";
    this.days = []; // as the API sends them: today first
    const redraw = () => this.draw();
    if (typeof ResizeObserver === "function") {
      new ResizeObserver(redraw).observe(svg);
    } else {
      window.addEventListener("resize", redraw);
    }
  }

  setDays(days) {
    this.days = days.slice(0, DAILY_SLOTS);
    this.draw();
  }

  _add(tag, attributes, text) {
    const node = document.createElementNS(this.svg.namespaceURI, tag); // the page's own <svg>
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
    if (text !== undefined) node.textContent = text;
    this.svg.appendChild(node);
    return node;
  }

  draw() {
    const svg = this.svg;
    const width = svg.clientWidth;
    const height = svg.clientHeight;
    if (!width || !height) return;
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.replaceChildren();
    const days = this.days.slice().reverse(); // oldest first
    const values = days.map((d) => (typeof d.yield_kwh === "number" ? d.yield_kwh : null));
    if (!days.length) {
      this._add("text", { x: 8, y: height / 2, class: "note" }, "no history yet");
      return;
    }
    const most = Math.max(0, ...values.filter((v) => v !== null));
    const ticks = niceTicks(0, most > 0 ? most : 1, 4);
    const highest = ticks[ticks.length - 1];
    const labels = ticks.map((v) => this._add("text", { class: "tick" }, formatTick(v, ticks)));
    const labelWidth = Math.max(...labels.map((t) => t.getComputedTextLength()));
    const { left, right, top, bottom, plotW, plotH } = plotArea(width, height, labelWidth);
    const sy = (v) => top + (1 - v / highest) * plotH;
    ticks.forEach((v, i) => {
      const y = Math.round(sy(v)) + 0.5;
      labels[i].setAttribute("x", left - 4);
      labels[i].setAttribute("y", y);
      this._add("line", { x1: left, x2: width - right, y1: y, y2: y, class: "grid" });
    });
    const slot = plotW / DAILY_SLOTS;
    const barW = Math.max(1, slot * 0.72);
    const first = DAILY_SLOTS - days.length; // a device with fewer days fills from the right
    days.forEach((day, i) => {
      const x = left + (first + i) * slot;
      const value = values[i];
      const today = day.days_ago === 0;
      if (value !== null) {
        const y = Math.min(sy(value), sy(0) - (value > 0 ? 1 : 0)); // a sunny day never vanishes
        const bar = this._add("rect", {
          x: (x + (slot - barW) / 2).toFixed(1),
          y: y.toFixed(1),
          width: barW.toFixed(1),
          height: (sy(0) - y).toFixed(1),
          class: today ? "bar today" : "bar",
          "data-date": day.date || "",
        });
        const shown = `${value.toLocaleString(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 })} ${this.unit}`;
        const title = document.createElementNS(this.svg.namespaceURI, "title");
        title.textContent = `${day.date || `${day.days_ago} days ago`}: ${shown}${today ? " so far" : ""}`;
        bar.appendChild(title);
      }
      if (day.days_ago % 7 === 0 && day.date) {
        const date = new Date(`${day.date}T12:00:00`);
        const text = today ? "today" : date.toLocaleDateString(undefined, { day: "numeric", month: "short" });
        this._add("text", { x: (x + slot / 2).toFixed(1), y: height - bottom + 4, class: "day" }, text);
      }
    });
  }
}

window.DailyBars = DailyBars;
