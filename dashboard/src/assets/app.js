// The dashboard page. State arrives by server-sent events (/api/events); the
// page never polls. Every text from the server, enclave bytes included, is
// set with textContent, never parsed as markup.
"use strict";

const $ = (id) => document.getElementById(id);
let diodeState = null;

function text(id, value) { $(id).textContent = value; }

function when(ms) {
  return ms ? new Date(ms).toISOString().replace(".000Z", "Z") : "unknown";
}

function showDiode(d) {
  diodeState = d;
  const summary = $("gate-summary");
  if (d.active) {
    summary.textContent = `Diode ${d.diode} guards ${d.iface} ${d.direction}`;
    summary.className = "summary ok";
  } else {
    summary.textContent = d.diode
      ? `Diode ${d.diode} on ${d.iface} is ${d.health}: prompts are not sent`
      : `NO DIODE on ${d.iface} ${d.direction}: prompts are not sent`;
    summary.className = "summary bad";
  }
  if (d.problem) summary.textContent += ` (${d.problem})`;
  text("diode-name", d.diode || "none");
  text("diode-where", `${d.iface} ${d.direction}${d.mode ? " (" + d.mode + ")" : ""}`);
  text("diode-program", d.program_id ? String(d.program_id) : "–");
  text("diode-since", d.since_ms ? when(d.since_ms) : "–");
  text("diode-source", d.source || "–");
}

function showCounters(c) {
  const body = $("reasons-body");
  body.replaceChildren();
  if (!c) {
    text("counter-pass", "–");
    text("counter-drop", "–");
    return;
  }
  text("counter-pass", String(c.pass));
  text("counter-drop", String(c.drop));
  for (const [reason, n] of c.reasons) {
    if (n === 0) continue;
    const tr = document.createElement("tr");
    tr.id = "reason-" + reason;
    const th = document.createElement("th");
    th.scope = "row";
    th.textContent = reason;
    const td = document.createElement("td");
    td.className = "n";
    td.textContent = String(n);
    tr.append(th, td);
    body.append(tr);
  }
  const lost = document.createElement("tr");
  const th = document.createElement("th");
  th.scope = "row";
  th.textContent = "lost events";
  const td = document.createElement("td");
  td.className = "n";
  td.textContent = String(c.lost_events);
  lost.append(th, td);
  body.append(lost);
}

function showLab(l) {
  const checks = $("lab-checks");
  checks.replaceChildren();
  if (!l.exists) {
    text("lab-summary", `No lab named ${l.name} (the enclave is given by --enclave).`);
    return;
  }
  text("lab-summary", `Lab ${l.name}: ${l.up ? "up" : "NOT fully up"}` +
    (l.enclave ? `, enclave at ${l.enclave}${l.vm ? " (in a VM)" : ""}` : ""));
  for (const [label, ok] of [["namespace", l.netns], ["host link", l.link],
      ["enclave process", l.enclave_running], ["enclave healthy (through the diode)", l.healthy]]) {
    const li = document.createElement("li");
    li.className = ok ? "yes" : "no";
    li.dataset.mark = ok ? "✓" : "✗";
    li.textContent = `${label}: ${ok ? "yes" : "no"}`;
    checks.append(li);
  }
}

function flowText(f) {
  if (!f) return "";
  const host = (ip) => (ip.includes(":") ? `[${ip}]` : ip);
  const port = (p) => (p == null ? "" : ":" + p);
  return `${host(f.src_ip)}${port(f.src_port)} → ${host(f.dest_ip)}${port(f.dest_port)}`;
}

// "at byte N" only for the exact deciding byte (a span of 1); otherwise
// the span the byte lies in, half-open.
function where(d) {
  if (d.offset == null) return "";
  if (d.offset_span === 1) return ` at byte ${d.offset}`;
  return ` in bytes ${d.offset}..${d.offset + d.offset_span}`;
}

function addDecision(d) {
  const li = document.createElement("li");
  const time = document.createElement("span");
  time.textContent = when(d.time_ms) + " ";
  const reason = document.createElement("span");
  reason.className = "reason";
  reason.textContent = `${d.diode}: ${d.reason}`;
  const rest = document.createElement("span");
  let s = " " + flowText(d.flow);
  if (d.decided_by) s += ` by ${d.decided_by}`;
  s += where(d);
  rest.textContent = s;
  li.append(time, reason, rest);
  if (d.excerpt) {
    const ex = document.createElement("div");
    ex.className = "excerpt";
    ex.textContent = `[${d.excerpt_start}..] "${d.excerpt}"`;
    li.append(ex);
  }
  const feed = $("feed");
  feed.prepend(li);
  while (feed.children.length > 100) feed.lastElementChild.remove();
}

function connect() {
  const source = new EventSource("/api/events");
  source.onopen = () => text("connection", "live");
  source.onerror = () => text("connection", "disconnected: reconnecting…");
  source.addEventListener("diode", (e) => showDiode(JSON.parse(e.data)));
  source.addEventListener("counters", (e) => showCounters(JSON.parse(e.data)));
  source.addEventListener("lab", (e) => showLab(JSON.parse(e.data)));
  source.addEventListener("decision", (e) => addDecision(JSON.parse(e.data)));
}

function showResult(kind, title, detail) {
  $("result").className = "result " + kind;
  text("result-title", title);
  text("result-detail", detail || "");
}

async function postJson(path, body) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  let data = null;
  try { data = await response.json(); } catch (_) { /* not JSON: reported below */ }
  if (!response.ok || !data) {
    throw new Error((data && data.error) || `${response.status} ${response.statusText}`);
  }
  return data;
}

async function sendPrompt(event) {
  event.preventDefault();
  const button = $("send");
  button.disabled = true;
  showResult("", "Waiting for the enclave…", "");
  try {
    const r = await postJson("/api/generate", {
      prompt: $("prompt").value,
      wait_time: Number($("wait-time").value),
      max_tokens: Number($("max-tokens").value),
    });
    const took = ` (${r.elapsed_ms} ms, local port ${r.local_port})`;
    if (r.outcome === "answered") {
      showResult("answered", `answered (HTTP ${r.status})${took}`, r.response);
    } else if (r.outcome === "blocked") {
      const d = r.drop;
      let detail = "";
      if (d.decided_by) detail += `decided by ${d.decided_by}\n`;
      if (d.offset != null && d.offset_span === 1) {
        detail += `the deciding byte is payload[${d.offset}]` +
          ` of a ${d.payload_len}-byte TCP payload\n`;
      } else if (d.offset != null) {
        detail += `the deciding byte lies in payload[${d.offset}..${d.offset + d.offset_span}]` +
          ` of a ${d.payload_len}-byte TCP payload\n`;
      }
      if (d.excerpt) detail += `excerpt from byte ${d.excerpt_start}: "${d.excerpt}"`;
      showResult("blocked", `blocked by ${d.diode}: ${d.reason}${where(d)}${took}`, detail);
    } else {
      showResult("no_answer", `no answer${took}`, `${r.why}; ${r.received_bytes} bytes arrived`);
    }
  } catch (e) {
    showResult("error", "not sent", e.message);
  } finally {
    button.disabled = false;
  }
}

async function replaceDiode(body, label) {
  const out = $("picker-result");
  out.className = "";
  out.textContent = `compiling and validating ${label}…`;
  for (const b of [$("switch"), $("upload-switch")]) b.disabled = true;
  try {
    const r = await postJson("/api/diode", body);
    out.textContent = r.replaced_program_id
      ? `${r.diode} (program ${r.program_id}) replaced program ${r.replaced_program_id} on ${r.iface} ${r.direction}`
      : `${r.diode} (program ${r.program_id}) attached to ${r.iface} ${r.direction}`;
  } catch (e) {
    out.className = "error-text";
    out.textContent = `${label}: not attached: ${e.message}`;
  } finally {
    for (const b of [$("switch"), $("upload-switch")]) b.disabled = false;
  }
}

async function loadExamples() {
  const state = await (await fetch("/api/state")).json();
  text("enclave", state.enclave);
  const picker = $("picker");
  if (state.examples.length === 0) {
    const none = document.createElement("option");
    none.value = "";
    none.textContent = "no examples directory (upload a spec)";
    picker.append(none);
  }
  for (const e of state.examples) {
    const option = document.createElement("option");
    option.value = e.name;
    option.textContent = e.diode === e.name ? e.name : `${e.name} (${e.diode})`;
    if (e.description) option.title = e.description;
    picker.append(option);
  }
}

$("prompt-form").addEventListener("submit", sendPrompt);
$("picker-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const name = $("picker").value;
  if (name) replaceDiode({ example: name }, name);
});
$("upload-switch").addEventListener("click", async () => {
  const file = $("upload").files[0];
  if (!file) {
    $("picker-result").textContent = "choose a spec file first";
    return;
  }
  $("picker-result").textContent = `reading ${file.name}…`;
  replaceDiode({ upload: file.name, spec: await file.text() }, file.name);
});
loadExamples().catch((e) => text("picker-result", `cannot list the examples: ${e.message}`));
connect();
