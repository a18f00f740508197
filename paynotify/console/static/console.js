// The console page: reads /api/* with the token kept in this tab's sessionStorage.
// Everything from the API is written with textContent, never as HTML.
"use strict";

const TOKEN_KEY = "paynotify-console-token";
const $ = (id) => document.getElementById(id);

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }

async function api(path) {
  let answer;
  try {
    answer = await fetch(path, { headers: { Authorization: "Bearer " + token() }, cache: "no-store" });
  } catch (err) {
    throw new ApiError(0, "Cannot reach the console (" + err.message + "): is paynotify console running?");
  }
  if (answer.status === 401) {
    throw new ApiError(401, "The console refused the token (401): enter the [console] token above.");
  }
  if (!answer.ok) {
    let detail = "";
    try { detail = (await answer.json()).detail; } catch (_) { /* not JSON */ }
    if (Array.isArray(detail) && detail.length) detail = detail[0].msg;  // a refused parameter
    throw new ApiError(answer.status, "The console answered " + answer.status +
      (typeof detail === "string" && detail ? ": " + detail : "."));
  }
  return answer.json();
}

function say(element, text, ok) {
  element.textContent = text;
  element.hidden = !text;
  element.classList.toggle("ok", Boolean(ok));
}

function row(cells, className) {
  const tr = document.createElement("tr");
  if (className) tr.className = className;
  for (const cell of cells) {
    const td = document.createElement("td");
    if (typeof cell === "number") td.className = "num";
    td.textContent = cell === null || cell === undefined ? "" : String(cell);
    tr.appendChild(td);
  }
  return tr;
}

function fill(tbody, rows, empty, columns) {
  tbody.replaceChildren(...rows);
  if (!rows.length) {
    const tr = row([empty]);
    tr.firstChild.colSpan = columns;
    tr.className = "quiet";
    tbody.appendChild(tr);
  }
}

function pairs(dl, items) {
  dl.replaceChildren();
  for (const [term, value] of items) {
    const dt = document.createElement("dt");
    dt.textContent = term;
    const dd = document.createElement("dd");
    dd.textContent = String(value);
    dl.append(dt, dd);
  }
}

function shortTime(text) {
  return String(text || "").replace("T", " ").replace(/\.\d+/, "").replace(/(\+00:00|Z)$/, " UTC");
}

async function loadStats() {
  const stats = await api("/api/stats");
  const statuses = Object.entries(stats.orders_by_status);
  fill($("by-status").tBodies[0], statuses.map(([s, n]) => row([s, n])), "no orders yet", 2);
  $("by-status").tBodies[0].appendChild(row(["total", stats.orders_total], "total"));
  const hour = stats.last_hour;
  pairs($("last-hour"), [
    ["notifications received", hour.notifications_received],
    ["orders paid", hour.orders_paid],
    ["anomalies", hour.anomalies],
  ]);
  $("stats-at").textContent = shortTime(stats.at);
}

async function loadAnomalies() {
  const query = new URLSearchParams({ limit: "50" });
  if ($("reason").value.trim()) query.set("reason", $("reason").value.trim());
  if ($("since").value.trim()) query.set("since", $("since").value.trim());
  const rows = await api("/api/anomalies?" + query);
  fill($("anomalies").tBodies[0],
    rows.map((a) => row([shortTime(a.recorded_at), a.reason, a.out_trade_no, a.detail])),
    "no anomalies", 4);
}

async function lookUp(number) {
  say($("order-message"), "");
  $("order").hidden = true;
  let story;
  try {
    story = await api("/api/orders/" + encodeURIComponent(number));
  } catch (err) {
    const text = err.status === 404 ? "Nothing on record for order " + number + " (404)." : err.message;
    say($("order-message"), text);
    return;
  }
  const order = story.order;
  pairs($("order-head"), order ? [
    ["order", order.out_trade_no],
    ["status", order.status + " (version " + order.version + ")"],
    ["amount", order.amount_minor + " " + order.currency + " (minor units)"],
    ["refunded", order.refunded_minor],
    ["account", order.account],
    ["paid by", order.provider ? order.provider + " " + order.provider_trade_no : "—"],
  ] : [["order", story.out_trade_no], ["status", "no expected order on record"]]);
  fill($("timeline").tBodies[0],
    story.timeline.map((e) => row([shortTime(e.at), e.what, e.summary], e.what)),
    "no history", 3);
  $("order").hidden = false;
}

function clearData() {
  for (const id of ["by-status", "anomalies", "timeline"]) $(id).tBodies[0].replaceChildren();
  $("last-hour").replaceChildren();
  $("order").hidden = true;
  $("stats-at").textContent = "never";
}

async function refresh() {
  if (!token()) {
    say($("message"), "Enter the console token to see payment data.");
    return;
  }
  try {
    await Promise.all([loadStats(), loadAnomalies()]);
    say($("message"), "");
  } catch (err) {
    if (err.status === 401) clearData();  // another token: what the last one showed goes
    say($("message"), err.message);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
    $("token").value = "";
    refresh();
  });
  $("forget").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    clearData();
    refresh();
  });
  $("order-form").addEventListener("submit", (event) => {
    event.preventDefault();
    lookUp($("order-number").value.trim());
  });
  $("anomaly-form").addEventListener("submit", (event) => {
    event.preventDefault();
    refresh();
  });
  $("refresh").addEventListener("click", refresh);
  refresh();
  setInterval(refresh, 30000);
});
