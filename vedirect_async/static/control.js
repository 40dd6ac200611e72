// vedirect_async live page: device controls (issue 15), shown only when the service allows
// writes ([http] token set and a device with writable registers: /api/controls says
// {"writes": true}) AND the person typed the token here. The token stays in this page's memory: no cookie, no storage;
// every write is a fetch with "Authorization: Bearer", so nothing a browser sends on its own
// can write. Each control shows the device's read-back, never what was asked.
"use strict";

(() => {
  let token = null;
  const state = { probed: false, writable: false }; // for the browser test
  window.vedirectControl = state;

  function node(tag, className, text) {
    const made = document.createElement(tag);
    if (className) made.className = className;
    if (text !== undefined) made.textContent = text;
    return made;
  }

  async function controls(given) {
    const headers = given ? { Authorization: `Bearer ${given}` } : {};
    return fetch("/api/controls", { cache: "no-store", headers });
  }

  async function probe() {
    const response = await controls(null);
    const body = response.ok ? await response.json() : {};
    state.probed = true;
    if (!body.writes) return; // read-only: no controls at all
    state.writable = true;
    const box = node("span", "unlock");
    const input = node("input");
    input.type = "password";
    input.id = "control-token";
    input.placeholder = "API token";
    input.autocomplete = "off";
    const button = node("button", null, "controls");
    button.type = "button";
    button.id = "control-unlock";
    const result = node("span", "control-result");
    button.addEventListener("click", async () => {
      const answer = await controls(input.value);
      if (!answer.ok) {
        result.textContent = answer.status === 401 ? "wrong token" : `error ${answer.status}`;
        return;
      }
      token = input.value;
      input.value = "";
      box.remove();
      render((await answer.json()).devices);
    });
    box.append(input, button, result);
    document.querySelector("footer").append(box);
  }

  function render(devices) {
    for (const [device, list] of Object.entries(devices)) {
      const section = document.querySelector(`section.device[data-device="${CSS.escape(device)}"]`);
      if (!section || !list.length) continue;
      section.querySelector(".controls")?.remove();
      const box = node("div", "controls");
      for (const control of list) box.append(row(device, control));
      section.append(box);
    }
  }

  function row(device, control) {
    const line = node("div", "control");
    line.dataset.control = control.name;
    const label = node("span", "control-name", control.name.replaceAll("_", " "));
    let input;
    if (control.kind === "number") {
      input = node("input");
      input.type = "number";
      if (control.min !== null) input.min = control.min;
      if (control.max !== null) input.max = control.max;
      input.step = control.step;
    } else {
      input = node("select");
      for (const option of control.options) input.append(new Option(option, option));
    }
    input.value = control.value ?? "";
    const unit = node("span", "control-unit", control.unit);
    const button = node("button", null, "set");
    button.type = "button";
    const result = node("span", "control-result");
    button.addEventListener("click", async () => {
      button.disabled = true;
      result.textContent = "…";
      try {
        const response = await fetch(`/api/devices/${encodeURIComponent(device)}/${control.name}`, {
          method: "POST",
          cache: "no-store",
          headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
          body: JSON.stringify({ value: input.value }),
        });
        const body = await response.json();
        if (response.ok) {
          input.value = body.shown; // what the device read back
          result.textContent = body.unchanged ? "unchanged" : "confirmed";
        } else {
          result.textContent = body.error;
        }
      } catch (error) {
        result.textContent = String(error);
      } finally {
        button.disabled = false;
      }
    });
    line.append(label, input, unit, button, result);
    return line;
  }

  probe();
})();
