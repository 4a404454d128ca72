// The ops console: signs in, then reads the gateway's admin-only /api/ops endpoints
// every few seconds and draws what they say. Every value goes into the page as text
// (textContent, never parsed as markup): payloads are user data. The token lives in this
// page's memory only, and every request carries it as a bearer header.
"use strict";

const REFRESH_MS = 3000;
let token = null;
let timer = null;
let chartUrl = null;

const $ = (id) => document.getElementById(id);

// An element with text and attributes; children appended in order.
function el(tag, text, attributes = {}, children = []) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  for (const child of children) node.append(child);
  return node;
}

function say(message) {
  $("status").textContent = message;
}

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) {
    let detail = `${response.status} ${response.statusText}`;
    try {
      detail = (await response.json()).detail || detail;
    } catch (_) {
      // Not problem+json: keep the status line.
    }
    const error = new Error(detail);
    error.status = response.status;
    throw error;
  }
  return response;
}

function duration(ms) {
  if (ms === null || ms === undefined) return "–";
  if (ms < 1000) return `${ms} ms`;
  if (ms < 120000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.round(ms / 60000)} min`;
}

function percent(rate) {
  return `${Math.round(rate * 100)}%`;
}

function replaceRows(tbody, rows) {
  tbody.replaceChildren(...rows);
}

function renderServices(services) {
  replaceRows($("services").tBodies[0], services.map((s) => {
    const breakers = s.breakers.map((b) => {
      const probe = b.next_probe_in_ms === null ? "" : `, next probe in ${duration(b.next_probe_in_ms)}`;
      const text = `${b.peer}: ${b.state} (failures ${percent(b.failure_rate)}, slow ${percent(b.slow_call_rate)} of ${b.calls}${probe})`;
      return el("span", text, { class: `breaker ${b.state}`, "data-peer": b.peer, "data-state": b.state });
    });
    const state = s.ready ? "ready" : `not ready: ${s.failing.join(", ")}`;
    const outbox = s.outbox ? `${s.outbox.events} (oldest ${duration(s.outbox.oldest_age_ms)})` : "–";
    return el("tr", null, { "data-service": s.service }, [
      el("td", s.service),
      el("td", state, { class: s.ready ? "ready" : "not-ready", "data-ready": String(s.ready) }),
      el("td", s.version),
      el("td", null, {}, breakers.length ? breakers : [document.createTextNode("–")]),
      el("td", outbox),
    ]);
  }));
}

function renderStreams(services) {
  const rows = [];
  for (const s of services) {
    for (const st of s.streams) {
      const consumers = st.consumers.map((c) => `${c.name} (${duration(c.idle_ms)}, ${c.pending} pending)`).join("; ");
      rows.push(el("tr", null, { "data-stream": st.stream, "data-group": st.group }, [
        el("td", st.stream), el("td", st.group), el("td", st.length),
        el("td", st.lag ?? "–"), el("td", st.pending),
        el("td", duration(st.oldest_pending_age_ms)), el("td", consumers || "–"),
      ]));
    }
  }
  replaceRows($("streams").tBodies[0], rows);
}

function eventType(envelope) {
  try {
    return JSON.parse(envelope).type || "?";
  } catch (_) {
    return "(not an envelope)";
  }
}

function renderDeadLetters(services) {
  const rows = [];
  for (const s of services) {
    for (const d of s.dead_letters) {
      const act = (action) => {
        const button = el("button", action === "replay" ? "Replay" : "Discard", { "data-action": action });
        button.addEventListener("click", () => actOn(action, s.service, d.stream, d.id));
        return button;
      };
      rows.push(el("tr", null, { "data-dead-letter": d.id }, [
        el("td", d.stream), el("td", d.group), el("td", eventType(d.envelope), { class: "event-type" }),
        el("td", d.error), el("td", d.deliveries),
        el("td", null, {}, [el("pre", d.envelope, { class: "payload" })]),
        el("td", null, {}, [act("replay"), act("discard")]),
      ]));
    }
  }
  replaceRows($("dead-letters").tBodies[0], rows);
}

async function actOn(action, service, stream, id) {
  try {
    await api("POST", `/api/ops/dead-letters/${action}`, { service, stream, id });
    say(`Dead letter ${id} ${action === "replay" ? "replayed" : "discarded"}.`);
  } catch (error) {
    say(`Could not ${action} ${id}: ${error.message}`);
  }
  refresh();
}

async function renderRecentOrders() {
  const orders = (await (await api("GET", "/api/orders?limit=8")).json()).data;
  $("recent-orders").replaceChildren(...orders.map((o) => {
    const button = el("button", `${o.id.slice(0, 8)} (${o.status})`, { type: "button", "data-order": o.id });
    button.addEventListener("click", () => showJourney(o.id));
    return button;
  }));
}

async function showJourney(orderId) {
  $("order-id").value = orderId;
  try {
    const journey = await (await api("GET", `/api/ops/orders/${encodeURIComponent(orderId)}/journey`)).json();
    const trace = $("journey-trace");
    trace.replaceChildren();
    if (journey.trace_id) {
      trace.append("Trace ");
      if (journey.trace_url) {
        trace.append(el("a", journey.trace_id, { href: journey.trace_url, rel: "noreferrer" }));
      } else {
        trace.append(el("code", journey.trace_id, { id: "trace-id" }));
      }
    }
    $("journey").replaceChildren(...journey.steps.map((step) => {
      const hop = step.since_previous_ms === null ? "" : ` (+${duration(step.since_previous_ms)})`;
      return el("li", `${step.at} ${step.step} by ${step.service}${hop}`, { "data-step": step.step });
    }));
  } catch (error) {
    say(`No journey for ${orderId}: ${error.message}`);
  }
}

async function renderChart() {
  const blob = await (await api("GET", "/api/ops/throughput.svg")).blob();
  if (chartUrl) URL.revokeObjectURL(chartUrl);
  chartUrl = URL.createObjectURL(blob);
  $("throughput").src = chartUrl;
}

async function refresh() {
  try {
    const services = (await (await api("GET", "/api/ops/services")).json()).data;
    renderServices(services);
    renderStreams(services);
    renderDeadLetters(services);
    $("console").hidden = false;
    $("sign-in").hidden = true;
    await Promise.all([renderRecentOrders(), renderChart()]);
    if (!$("status").textContent.startsWith("Dead letter")) {
      say(`Updated ${new Date().toLocaleTimeString()}; refreshes every ${REFRESH_MS / 1000} s.`);
    }
  } catch (error) {
    if (error.status === 401 || error.status === 403) {
      stop();
      say(error.status === 403 ? "Refused: the console is for admins only." : "Signed out: sign in again.");
    } else {
      say(`Could not refresh: ${error.message}`);
    }
  }
}

function stop() {
  clearInterval(timer);
  timer = null;
  token = null;
  $("console").hidden = true;
  $("sign-in").hidden = false;
}

$("sign-in").addEventListener("submit", async (event) => {
  event.preventDefault();
  const response = await fetch("/api/auth/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ email: $("email").value, password: $("password").value }),
  });
  $("password").value = "";
  if (!response.ok) {
    say("Sign-in failed: wrong email or password.");
    return;
  }
  token = (await response.json()).access_token;
  await refresh();
  if (token) timer = setInterval(refresh, REFRESH_MS);
});

$("journey-form").addEventListener("submit", (event) => {
  event.preventDefault();
  showJourney($("order-id").value.trim());
});
