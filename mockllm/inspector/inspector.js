// The mockllm inspector: polls the control plane's `journal` and `rules` (relative to this page,
// so it works at /_mockllm/ and at /_mockllm/ns/NAME/) and draws each request, newest first.
// Journal text is only ever set as text (textContent, attributes), never parsed as HTML.
"use strict";

const POLL_MS = 500;
const RULES_EVERY = 4; // polls between two reads of the rules when no request came
const FIRST_LOAD = 200; // the newest entries read when the page opens on a long journal
const KEEP = 500; // entries kept on the page; older ones are dropped from the view
// An entry without an end time ("ended"/"done") may still be writing: read it again this long.
const LIVE_SECONDS = 35;

// A server started with --admin-token wants it on every control request: open the page as
// /_mockllm/#token=TOKEN (a fragment never reaches a server, a proxy or an access log).
const TOKEN = new URLSearchParams(location.hash.slice(1)).get("token");

const view = {
  since: 0, // the index of the next request the server will journal
  shown: new Map(), // index -> {entry, node, key}
  hiddenBelow: 0, // "Clear view": entries below this index are not shown again
  paused: false,
  polls: 0,
  first: true,
};

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child)); // a string becomes a text node
  }
  return node;
}

function ms(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const value = seconds * 1000;
  return (value >= 100 ? value.toFixed(0) : value.toFixed(1)) + " ms";
}

function clock(unixSeconds) {
  const date = new Date(unixSeconds * 1000);
  const pad = (n, width) => String(n).padStart(width, "0");
  const hms = [date.getHours(), date.getMinutes(), date.getSeconds()].map((n) => pad(n, 2)).join(":");
  return `${hms}.${pad(date.getMilliseconds(), 3)}`;
}

function finished(entry) {
  if (entry.ended !== undefined) return entry.ended !== null;
  if (entry.done !== undefined) return Boolean(entry.done);
  if (entry.status === 0) return false;
  return Date.now() / 1000 - entry.arrived > LIVE_SECONDS;
}

function statusClass(entry) {
  if (entry.aborted) return "cut";
  if (entry.status === 418) return "s418";
  if (!entry.status) return "pending";
  return "s" + String(entry.status)[0];
}

// --- what the request said, whichever API it spoke -----------------------------------------------

function textOf(content) {
  if (content === null || content === undefined) return "";
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return content.text !== undefined ? String(content.text) : JSON.stringify(content);
  return content
    .map((part) => {
      if (typeof part === "string") return part;
      if (part.text !== undefined) return String(part.text);
      if (part.type === "tool_use") return `→ ${part.name}(${JSON.stringify(part.input)})`;
      if (part.type === "tool_result") return `tool result: ${textOf(part.content)}`;
      if (part.functionCall) return `→ ${part.functionCall.name}(${JSON.stringify(part.functionCall.args)})`;
      if (part.functionResponse) {
        return `tool result (${part.functionResponse.name}): ${JSON.stringify(part.functionResponse.response)}`;
      }
      return JSON.stringify(part);
    })
    .join("\n");
}

function messagesOf(body) {
  const out = [];
  const add = (role, text) => out.push({ role: String(role || "?"), text });
  if (body.system !== undefined) add("system", textOf(body.system)); // Anthropic
  if (body.instructions) add("system", textOf(body.instructions)); // Responses
  if (body.systemInstruction) add("system", textOf(body.systemInstruction.parts)); // Gemini
  for (const message of Array.isArray(body.messages) ? body.messages : []) {
    let text = textOf(message.content);
    for (const call of message.tool_calls || []) {
      const fn = call.function || {};
      text += `${text ? "\n" : ""}→ ${fn.name}(${fn.arguments || ""})`;
    }
    add(message.role, text);
  }
  if (typeof body.input === "string") add("user", body.input);
  else if (Array.isArray(body.input)) {
    for (const item of body.input) {
      if (typeof item === "string") add("input", item);
      else if (item.type === "function_call") add("assistant", `→ ${item.name}(${item.arguments || ""})`);
      else if (item.type === "function_call_output") add("tool", textOf(item.output));
      else add(item.role || item.type, textOf(item.content));
    }
  }
  for (const turn of Array.isArray(body.contents) ? body.contents : []) add(turn.role || "user", textOf(turn.parts));
  if (body.prompt !== undefined) add("prompt", textOf(body.prompt)); // legacy completions
  return out;
}

function toolsOf(body) {
  const names = [];
  for (const tool of Array.isArray(body.tools) ? body.tools : []) {
    if (tool.function && tool.function.name) names.push(tool.function.name);
    else if (tool.name) names.push(tool.name);
    else if (Array.isArray(tool.functionDeclarations)) names.push(...tool.functionDeclarations.map((f) => f.name));
    else if (tool.type) names.push(tool.type);
  }
  return names;
}

function modelOf(entry) {
  const body = entry.request;
  if (body && typeof body.model === "string") return body.model;
  const inPath = /\/models\/([^/:]+)/.exec(entry.path || ""); // Gemini names the model in the path
  return inPath ? decodeURIComponent(inPath[1]) : "";
}

function requestView(entry) {
  const body = entry.request;
  if (body === null || typeof body !== "object") return el("p", { class: "muted" }, "request body: not JSON");
  const messages = messagesOf(body);
  const tools = toolsOf(body);
  const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
  const summary = [plural(messages.length, "message")];
  if (tools.length) summary.push(`tools: ${tools.join(", ")}`);
  const list = el("ol", { class: "messages" });
  for (const message of messages) {
    list.append(el("li", {}, el("span", { class: "role" }, message.role), el("pre", {}, message.text)));
  }
  return el(
    "details",
    { class: "request" },
    el("summary", {}, `request: ${summary.join("; ")}`),
    list,
    tools.length ? el("p", { class: "tools" }, "tools offered: ", ...tools.map((name) => el("code", {}, name))) : null,
    el("details", { class: "raw" }, el("summary", {}, "body JSON"), el("pre", {}, JSON.stringify(body, null, 2))),
  );
}

// --- the stream as a timeline ------------------------------------------------------------------------

function timeline(entry) {
  const writes = entry.writes || [];
  let end = 0;
  for (const write of writes) end = Math.max(end, write.at || 0, write.sent || 0);
  const lastSent = writes.reduce((last, write) => (write.sent !== null ? Math.max(last, write.sent) : last), 0);
  const cutAt = entry.aborted ? (typeof entry.ended === "number" ? entry.ended : lastSent) : null;
  if (typeof entry.ended === "number") end = Math.max(end, entry.ended);
  const span = end > 0 ? end : 1;
  const at = (seconds) => `${((100 * seconds) / span).toFixed(3)}%`;

  const scheduled = el("div", { class: "track" });
  // a whole answer (one untimed write) takes one lane: its tick and its dot together
  const whole = !entry.stream && !entry.aborted && writes.every((write) => write.sent === null);
  const sent = whole ? scheduled : el("div", { class: "track" });
  const overlay = el("div", { class: "overlay" }); // over both lanes: the cut
  writes.forEach((write, i) => {
    // A whole (not streamed) answer's one write is not timed: drawn at its schedule, hollow.
    const untimed = write.sent === null && !entry.stream && !entry.aborted;
    const sentAt = untimed ? write.at : write.sent;
    const late = write.sent !== null ? write.sent - write.at : null;
    const when = untimed ? "sent whole (not timed)" : `sent ${ms(write.sent)}`;
    const title =
      `write ${i + 1} of ${writes.length}: scheduled ${ms(write.at)}, ${when}` +
      (late !== null ? ` (${late >= 0 ? "+" : ""}${ms(late)})` : untimed ? "" : " (never sent)") +
      `, ${write.size} B\n${write.text}`;
    const tick = el("span", { class: sentAt === null ? "mark at unsent" : "mark at", title });
    tick.style.left = at(write.at);
    scheduled.append(tick);
    if (sentAt === null) return;
    if (late !== null && Math.abs(late) > 0.005) {
      // more than 5 ms off its schedule: a bar from when it was due to when it went
      const bar = el("span", { class: "late" });
      bar.style.left = at(Math.min(write.at, write.sent));
      bar.style.width = at(Math.abs(late));
      sent.append(bar);
    }
    const dot = el("span", { class: untimed ? "mark sent untimed" : "mark sent", title });
    dot.style.left = at(sentAt);
    sent.append(dot);
  });
  if (cutAt !== null) {
    // the label goes left of the mark when the cut is near the right edge
    const side = cutAt / span > 0.8 ? "cut-mark left" : "cut-mark";
    const cut = el("span", { class: side, title: `connection cut at ${ms(cutAt)}` }, el("span", {}, "cut"));
    cut.style.left = at(cutAt);
    overlay.append(cut);
  }
  const count = `${writes.length} write${writes.length === 1 ? "" : "s"}`;
  const words = `${count} over ${ms(end)}${cutAt !== null ? ", then cut" : ""}`;
  return el(
    "figure",
    { class: "timeline", role: "img", "aria-label": `timeline: ${words}` },
    whole
      ? el("div", { class: "lanes" }, el("div", { class: "lane" }, el("span", { class: "lane-name" }, "whole"), sent))
      : el(
          "div",
          { class: "lanes" },
          el("div", { class: "lane" }, el("span", { class: "lane-name" }, "scheduled"), scheduled),
          el("div", { class: "lane" }, el("span", { class: "lane-name" }, "sent"), sent),
          overlay,
        ),
    el("figcaption", {}, el("span", {}, "0"), el("span", {}, words), el("span", {}, ms(end))),
  );
}

// --- one entry: a <tbody> of two rows ----------------------------------------------------------------

// file:line as the file's name and line; the whole path on hover
function origin(text) {
  if (!text) return null;
  const name = text.split(/[\\/]/).pop();
  return el("code", { class: "origin", title: text }, name);
}

function ruleCell(entry) {
  if (entry.rule !== null && entry.rule !== undefined) {
    return el("td", { class: "rule" }, el("strong", {}, entry.rule), " ", origin(entry.origin));
  }
  if (entry.status === 418) return el("td", { class: "rule none" }, "no rule matched");
  return el("td", { class: "rule none" }, entry.status ? "none" : "…");
}

function statusCell(entry) {
  const flags = [];
  if (entry.stream) flags.push("stream");
  if (entry.aborted) flags.push("cut");
  if (entry.raised) flags.push("raised");
  return el(
    "td",
    { class: "status" },
    el("span", { class: `badge ${statusClass(entry)}` }, entry.status ? String(entry.status) : "…"),
    ...flags.map((flag) => el("span", { class: `flag ${flag}` }, flag)),
  );
}

function entryNode(entry, wasOpen) {
  const details = el("td", { colspan: 7 });
  if (entry.error) details.append(el("pre", { class: "why" }, entry.error));
  if (entry.backoff) {
    const b = entry.backoff;
    details.append(
      el(
        "p",
        { class: "backoff" },
        `retry of #${b.after}: asked to wait ${ms(b.asked)}, waited ${ms(b.waited)}` +
          ` (${b.honoured ? "honoured" : "not honoured"})`,
      ),
    );
  }
  details.append(timeline(entry));
  const request = requestView(entry);
  if (wasOpen && request.tagName === "DETAILS") request.open = true;
  details.append(request);
  return el(
    "tbody",
    { class: `entry ${statusClass(entry)}`, "data-index": entry.index },
    el(
      "tr",
      { class: "summary" },
      el("td", { class: "index" }, String(entry.index)),
      el("td", {}, el("time", {}, clock(entry.arrived))),
      el("td", {}, entry.endpoint),
      el("td", {}, el("code", {}, `${entry.method || "POST"} ${entry.path}`)),
      el("td", {}, modelOf(entry)),
      statusCell(entry),
      ruleCell(entry),
    ),
    el("tr", { class: "detail" }, details),
  );
}

function keyOf(entry) {
  const writes = entry.writes || [];
  const last = writes.length ? writes[writes.length - 1].sent : null;
  const parts = [entry.arrived, entry.status, entry.rule, entry.error, entry.aborted, entry.ended, entry.backoff];
  return JSON.stringify([...parts, writes.length, last]);
}

function show(entry) {
  if (entry.index < view.hiddenBelow) return;
  const old = view.shown.get(entry.index);
  const key = keyOf(entry);
  if (old && old.key === key) {
    old.entry = entry;
    return;
  }
  const wasOpen = old ? Boolean(old.node.querySelector("details.request[open]")) : false;
  const node = entryNode(entry, wasOpen);
  if (old) old.node.replaceWith(node);
  else {
    // newest first: before the first shown entry with a lower index
    const table = $("requests");
    const shown = [...table.tBodies].filter((body) => body.dataset.index !== undefined);
    const below = shown.find((body) => Number(body.dataset.index) < entry.index);
    table.insertBefore(node, below || null);
  }
  view.shown.set(entry.index, { entry, node, key });
}

function forget(index) {
  const item = view.shown.get(index);
  if (item) item.node.remove();
  view.shown.delete(index);
}

function showEmpty() {
  $("empty").hidden = view.shown.size > 0;
}

// --- polling -----------------------------------------------------------------------------------------

async function getJSON(url) {
  const headers = { accept: "application/json" };
  if (TOKEN) headers.authorization = `Bearer ${TOKEN}`;
  const response = await fetch(url, { cache: "no-store", headers });
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    if (response.status === 401) {
      throw new Error("this server wants its admin token: open this page as …/_mockllm/#token=TOKEN");
    }
    try {
      message = (await response.json()).error.message || message;
    } catch (_) {
      // not the contract's error shape: the status says enough
    }
    throw new Error(message);
  }
  return response.json();
}

async function pollJournal() {
  let from = view.since;
  for (const [index, item] of view.shown) if (!finished(item.entry)) from = Math.min(from, index);
  const query = view.first ? `since=0&limit=${FIRST_LOAD}` : `since=${from}`;
  const journal = await getJSON(`journal?${query}`);
  if (view.paused) return false; // paused while it was asked: it is read again on resume
  if (journal.next < view.since) {
    // the server's journal was reset: start again from what it holds now
    for (const index of [...view.shown.keys()]) forget(index);
    view.hiddenBelow = 0;
  }
  const came = journal.next !== view.since;
  for (const entry of journal.entries) show(entry);
  view.since = journal.next;
  view.first = false;
  while (view.shown.size > KEEP) forget(Math.min(...view.shown.keys()));
  showEmpty();
  return came;
}

async function pollRules() {
  const { rules } = await getJSON("rules");
  const rows = rules.map((rule) =>
    el(
      "tr",
      { class: rule.left === 0 ? "spent" : null },
      el(
        "td",
        {},
        el("span", { class: "name" }, rule.name),
        rule.optional ? el("span", { class: "flag" }, "optional") : null,
        " ",
        origin(rule.origin),
      ),
      el("td", { class: "num" }, String(rule.calls)),
      el("td", { class: "num" }, rule.left === null ? "∞" : String(rule.left)),
    ),
  );
  $("rules").tBodies[0].replaceChildren(...rows);
}

function say(text, failed) {
  const status = $("status");
  status.textContent = text;
  status.classList.toggle("failed", Boolean(failed));
}

async function poll() {
  if (view.paused) return;
  try {
    const came = await pollJournal();
    if (came || view.polls % RULES_EVERY === 0) await pollRules();
    view.polls += 1;
    if (!view.paused) say(`live: ${view.shown.size} shown, ${view.since} received`);
  } catch (error) {
    say(`cannot read the journal: ${error.message}`, true);
  }
}

async function loop() {
  await poll();
  setTimeout(loop, POLL_MS);
}

// The script is added by the page's head: it may run before the body is parsed.
function start() {
  $("pause").addEventListener("click", () => {
    view.paused = !view.paused;
    const button = $("pause");
    button.setAttribute("aria-pressed", String(view.paused));
    button.textContent = view.paused ? "Resume" : "Pause";
    if (view.paused) say("paused: the page is not updating");
    else poll();
  });

  $("clear").addEventListener("click", () => {
    for (const index of [...view.shown.keys()]) forget(index);
    view.hiddenBelow = view.since;
    showEmpty();
    say(`view cleared: showing requests from #${view.since} on`);
  });
  loop();
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
else start();
