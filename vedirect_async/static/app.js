// vedirect_async live page: latest values per device, charts of the last hours, health.
// Data: /api/readings once, /api/history per range, /api/stream (SSE) live, /api/health polled,
// /api/daily (an MPPT's 30-day history) at start, after a day change and every 10 minutes.
"use strict";

const TILES = [
  // [field, title, decimals]; shown when the device sends the field
  ["voltage", "Voltage", 2],
  ["current", "Current", 2],
  ["power", "Power", 0],
  ["consumed_ah", "Consumed", 1],
  ["time_to_go", "Time to go", 0],
  ["charger_state", "Charger", 0],
  ["alarm", "Alarm", 0],
  ["panel_voltage", "Panel voltage", 2],
  ["panel_power", "Panel power", 0],
  ["yield_today", "Yield today", 2],
  ["load_current", "Load current", 2],
  ["error", "Charger error", 0],
  ["aux_voltage", "Starter voltage", 2],
  ["temperature", "Temperature", 0],
  ["mid_deviation", "Mid-point deviation", 1],
];
const CHARTS = [
  // [field, title, color, decimals]
  ["soc", "State of charge", "#3fb950", 1],
  ["voltage", "Voltage", "#4fb3ff", 2],
  ["current", "Current", "#d2a8ff", 2],
  ["power", "Power", "#ffa657", 0],
  ["panel_power", "Panel power", "#f2cc60", 0],
];
const HEALTH_EVERY_MS = 5000;
const DAILY_EVERY_MS = 10 * 60 * 1000;
const DAILY_RETRY_MS = 30 * 1000; // an MPPT whose history the service has not read yet
const DAILY_AFTER_DAY_CHANGE_MS = 20 * 1000; // the service reads the new history meanwhile
const STALE_AFTER_MS = 15000;

const page = {
  hours: 6,
  devices: new Map(), // name -> {el, tiles: Map, charts: Map, reading, seen, daily, dailyBars}
  health: null,
  stream: null,
};
window.vedirect = page; // for people poking at it from the console, and the browser test

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function entry(reading, name) {
  return reading && reading.values ? reading.values[name] : undefined;
}

function formatNumber(value, decimals) {
  return Number(value).toLocaleString(undefined, {
    minimumFractionDigits: decimals,
    maximumFractionDigits: decimals,
  });
}

function formatDuration(minutes) {
  const h = Math.floor(minutes / 60);
  const m = Math.round(minutes % 60);
  if (h >= 48) return `${Math.floor(h / 24)} d ${h % 24} h`;
  return `${h}:${String(m).padStart(2, "0")} h`;
}

// {text, unit, alert} for one value entry of /api/readings
function display(field, item, decimals) {
  if (!item) return { text: "—", unit: "" };
  if (item.special === "unavailable") return { text: "—", unit: "", title: "not available (not synchronised)" };
  if (item.special === "infinite") return { text: "∞", unit: "" };
  const value = item.value;
  if (field === "time_to_go" && typeof value === "number") return { text: formatDuration(value), unit: "" };
  if (field === "alarm") return { text: value ? "ALARM" : "none", unit: "", alert: Boolean(value) };
  if (field === "error") return { text: String(value), unit: "", alert: value !== "no error" && value !== 0 };
  if (typeof value === "boolean") return { text: value ? "on" : "off", unit: "" };
  if (Array.isArray(value)) return { text: value.length ? value.join(", ") : "none", unit: "" };
  if (typeof value === "number") return { text: formatNumber(value, decimals), unit: item.unit || "" };
  return { text: String(value), unit: "" };
}

function derivedPower(reading) {
  // MPPTs and chargers do not send P: battery power is V x I
  const v = entry(reading, "voltage");
  const i = entry(reading, "current");
  if (!v || !i || typeof v.value !== "number" || typeof i.value !== "number") return undefined;
  return { value: v.value * i.value, unit: "W", label: "V×I" };
}

function valueOf(reading, field) {
  const item = entry(reading, field) || (field === "power" ? derivedPower(reading) : undefined);
  return item && typeof item.value === "number" && !item.special ? item.value : null;
}

function ensureDevice(name) {
  let device = page.devices.get(name);
  if (device) return device;
  const empty = document.getElementById("empty");
  if (empty) empty.remove();
  const node = document.getElementById("device-template").content.firstElementChild.cloneNode(true);
  node.dataset.device = name;
  node.querySelector(".device-name").textContent = name;
  document.getElementById("devices").appendChild(node);
  device = { name, el: node, tiles: new Map(), charts: new Map(), reading: null, seen: 0 };
  Object.assign(device, { daily: null, dailyBars: null, daySequence: undefined, dailyTimer: null });
  page.devices.set(name, device);
  return device;
}

function ensureTile(device, field, title) {
  let tile = device.tiles.get(field);
  if (tile) return tile;
  tile = el("div", "tile");
  tile.dataset.tile = field;
  tile.appendChild(el("div", "name", title));
  const value = el("div", "value");
  value.appendChild(el("span", "", "—"));
  value.firstChild.dataset.field = field;
  value.appendChild(el("small"));
  tile.appendChild(value);
  // keep the TILES order whatever order fields first arrive in
  const order = TILES.findIndex((t) => t[0] === field);
  const tiles = device.el.querySelector(".tiles");
  const after = [...tiles.children].find((c) => TILES.findIndex((t) => t[0] === c.dataset.tile) > order);
  tiles.insertBefore(tile, after || null);
  device.tiles.set(field, tile);
  return tile;
}

function ensureChart(device, field) {
  let chart = device.charts.get(field);
  if (chart) return chart;
  const spec = CHARTS.find((c) => c[0] === field);
  const box = el("div", "chart");
  box.dataset.chart = field;
  const title = el("h3", "", spec[1]);
  box.appendChild(title);
  const canvas = el("canvas");
  canvas.setAttribute("role", "img");
  canvas.setAttribute("aria-label", `${spec[1]} over the last hours`);
  box.appendChild(canvas);
  const charts = device.el.querySelector(".charts");
  const order = CHARTS.findIndex((c) => c[0] === field);
  const after = [...charts.children].find((c) => CHARTS.findIndex((s) => s[0] === c.dataset.chart) > order);
  charts.insertBefore(box, after || null);
  chart = new window.LineChart(canvas, { color: spec[2], decimals: spec[3], windowMs: page.hours * 3600000 });
  chart.title = title;
  device.charts.set(field, chart);
  return chart;
}

function render(reading) {
  const device = ensureDevice(reading.device);
  device.reading = reading;
  device.seen = Date.now();
  device.el.classList.remove("stale");
  const product = [reading.product, reading.firmware ? `fw ${reading.firmware}` : null].filter(Boolean);
  device.el.querySelector(".product").textContent = product.join(" · ");

  const soc = entry(reading, "soc");
  const socBox = device.el.querySelector(".soc");
  socBox.hidden = !soc;
  if (soc) {
    const shown = display("soc", soc, 1);
    device.el.querySelector('[data-field="soc"]').textContent = shown.text;
    const fill = device.el.querySelector(".soc-fill");
    const pct = typeof soc.value === "number" ? Math.max(0, Math.min(100, soc.value)) : 0;
    fill.style.width = `${pct}%`;
    fill.style.background = pct < 30 ? "var(--bad)" : pct < 60 ? "var(--warn)" : "var(--ok)";
  }
  device.el.querySelector(".summary").style.gridTemplateColumns = soc ? "" : "1fr";

  for (const [field, title, decimals] of TILES) {
    let item = entry(reading, field);
    if (!item && field === "power") item = derivedPower(reading);
    if (!item) continue;
    const tile = ensureTile(device, field, item.label === "V×I" ? `${title} (V×I)` : title);
    const shown = display(field, item, decimals);
    if (field === "alarm") {
      const reasons = entry(reading, "alarm_reason");
      if (reasons && Array.isArray(reasons.value) && reasons.value.length) shown.text = reasons.value.join(", ");
    }
    const valueEl = tile.querySelector("[data-field]");
    valueEl.textContent = shown.text;
    valueEl.title = shown.title || "";
    tile.querySelector("small").textContent = shown.unit;
    tile.classList.toggle("alert", Boolean(shown.alert));
    tile.classList.toggle("text", typeof item.value === "string");
  }

  const sequence = entry(reading, "day_sequence");
  if (sequence && typeof sequence.value === "number") {
    // HSDS moved on: a new day, the service reads the device's history again
    if (device.daySequence !== undefined && sequence.value !== device.daySequence) {
      scheduleDaily(device, DAILY_AFTER_DAY_CHANGE_MS);
    }
    device.daySequence = sequence.value;
  }

  const t = reading.timestamp * 1000;
  for (const [field] of CHARTS) {
    const value = valueOf(reading, field);
    if (value === null) continue;
    if (field === "power" && !entry(reading, "power") && entry(reading, "panel_power")) continue;
    ensureChart(device, field).push(t, value, true);
  }
}

async function getJSON(url) {
  const response = await fetch(url, { cache: "no-store" });
  const body = await response.json();
  return { ok: response.ok, status: response.status, body };
}

async function loadHistory(device) {
  const wanted = CHARTS.map((c) => c[0]).filter((f) => entry(device.reading, f));
  if (!wanted.length) return;
  const width = Math.max(300, Math.min(2000, Math.round(window.innerWidth)));
  const params = new URLSearchParams({
    device: device.name,
    field: wanted.join(","),
    since: String(-page.hours * 3600),
    max_points: String(width),
  });
  let answer;
  try {
    answer = await getJSON(`/api/history?${params}`);
  } catch (error) {
    return; // the service is restarting; the next range change or reload asks again
  }
  const { ok, body } = answer;
  if (!ok) return;
  const times = body.t.map((t) => t * 1000);
  const { voltage, current, power } = body.values;
  if (power && voltage && current) {
    // the CSV log (backfill) has no power column: fill the gaps with V x I
    body.values.power = power.map((p, i) =>
      p !== null || voltage[i] === null || current[i] === null ? p : Math.round(voltage[i] * current[i]),
    );
  }
  for (const field of wanted) {
    const chart = ensureChart(device, field);
    const live = chart.points.filter((p) => !times.length || p[0] > times[times.length - 1]);
    chart.setData(times, body.values[field]);
    for (const [t, v] of live) chart.push(t, v, false);
    chart.setWindow(page.hours * 3600000);
    const unit = body.fields[field] && body.fields[field].unit;
    if (unit) chart.title.textContent = `${CHARTS.find((c) => c[0] === field)[1]} (${unit})`;
  }
}

function scheduleDaily(device, delay) {
  window.clearTimeout(device.dailyTimer);
  device.dailyTimer = window.setTimeout(() => loadDaily(device), delay);
}

// The device's daily history as bars (only a device that has one: an MPPT answering HEX).
async function loadDaily(device) {
  window.clearTimeout(device.dailyTimer);
  let days = null;
  try {
    const { ok, body } = await getJSON(`/api/daily?${new URLSearchParams({ device: device.name })}`);
    if (ok && Array.isArray(body)) days = body;
  } catch (error) {
    // the service is restarting: asked again below
  }
  if (days) {
    device.daily = days;
    if (days.length) renderDaily(device, days);
  }
  const waiting = !(days && days.length) && device.daySequence !== undefined;
  scheduleDaily(device, waiting ? DAILY_RETRY_MS : DAILY_EVERY_MS);
}

function renderDaily(device, days) {
  const box = device.el.querySelector(".daily");
  box.hidden = false;
  if (!device.dailyBars) device.dailyBars = new window.DailyBars(box.querySelector("svg"));
  const total = days.reduce((sum, d) => sum + (typeof d.yield_kwh === "number" ? d.yield_kwh : 0), 0);
  box.querySelector(".sum").textContent = `${days.length} days: ${formatNumber(total, 1)} kWh`;
  device.dailyBars.setDays(days);
}

function renderHealth(health) {
  page.health = health;
  const status = document.getElementById("status");
  const ok = health.status === "ok";
  status.textContent = ok ? "healthy" : "unhealthy";
  status.className = `badge ${ok ? "badge-ok" : "badge-bad"}`;
  const problems = document.getElementById("problems");
  problems.hidden = ok;
  problems.textContent = ok ? "" : health.problems.join(" · ");
  const outputs = document.getElementById("outputs");
  outputs.replaceChildren();
  for (const [name, info] of Object.entries(health.outputs || {})) {
    const kind = info.health === "ok" ? "badge-ok" : info.health === "degraded" ? "badge-warn" : "badge-bad";
    const badge = el("span", `badge ${kind}`, info.health === "ok" ? name : `${name}: ${info.health}`);
    badge.title = info.reason || (info.last_success ? `last success ${info.last_success}` : "");
    outputs.appendChild(badge);
  }
  for (const [name, info] of Object.entries(health.devices || {})) {
    const device = ensureDevice(name);
    device.el.classList.toggle("stale", !info.fresh);
    const reader = device.el.querySelector(".reader");
    reader.textContent = info.reader_state + (info.restarts ? ` · ${info.restarts} restarts` : "");
    reader.className = `badge reader ${info.fresh ? "badge-ok" : "badge-bad"}`;
    reader.title = info.reason || "reader state";
    const age = device.el.querySelector(".age");
    age.textContent = info.last_reading_age === null ? "no reading yet" : `updated ${Math.round(info.last_reading_age)} s ago`;
  }
}

async function pollHealth() {
  try {
    const { body } = await getJSON("/api/health");
    renderHealth(body);
  } catch (error) {
    const status = document.getElementById("status");
    status.textContent = "service unreachable";
    status.className = "badge badge-bad";
  }
}

function connectStream() {
  const live = document.getElementById("live");
  const stream = new EventSource("/api/stream");
  page.stream = stream;
  stream.addEventListener("open", () => {
    live.textContent = "live";
    live.className = "badge badge-ok";
  });
  stream.addEventListener("error", () => {
    live.textContent = "reconnecting…";
    live.className = "badge badge-warn";
  });
  stream.addEventListener("reading", (event) => {
    const reading = JSON.parse(event.data);
    const fresh = !page.devices.has(reading.device);
    render(reading);
    if (fresh) {
      loadHistory(page.devices.get(reading.device));
      loadDaily(page.devices.get(reading.device));
    }
  });
}

function tick() {
  const now = Date.now();
  document.getElementById("clock").textContent = new Date(now).toLocaleString();
  for (const device of page.devices.values()) {
    if (device.seen && now - device.seen > STALE_AFTER_MS) device.el.classList.add("stale");
  }
}

function setRange(hours) {
  page.hours = hours;
  for (const button of document.querySelectorAll(".ranges button")) {
    button.classList.toggle("active", Number(button.dataset.hours) === hours);
  }
  for (const device of page.devices.values()) {
    for (const chart of device.charts.values()) chart.setWindow(hours * 3600000);
    if (device.reading) loadHistory(device);
  }
}

async function start() {
  for (const button of document.querySelectorAll(".ranges button")) {
    button.addEventListener("click", () => setRange(Number(button.dataset.hours)));
  }
  try {
    const { body } = await getJSON("/api/readings");
    for (const reading of Object.values(body.devices)) render(reading);
  } catch (error) {
    document.getElementById("live").textContent = "no data";
  }
  await Promise.all([...page.devices.values()].flatMap((d) => [loadHistory(d), loadDaily(d)]));
  page.ready = true;
  connectStream();
  pollHealth();
  window.setInterval(pollHealth, HEALTH_EVERY_MS);
  window.setInterval(tick, 1000);
  tick();
}

start();
