// The physician's report worklist. Keyboard: j / ↓ next, k / ↑ previous, Enter opens. Live: when the
// worklist websocket says a draft or a report changed, the list body is fetched again from the
// server (rendered and escaped there, with the page's filters); if the websocket cannot connect,
// the body is polled instead. No inline script (CSP): this module is the page's only script.
const region = document.getElementById("worklist-region");
const live = document.getElementById("worklist-live");
// Every refresh is an audited read of the list: poll gently, and only while the websocket is down.
const POLL_MS = 15000;
const RETRY_MAX_MS = 60000;
let retryMs = 2000;
let selectedId = null;
let pollTimer = null;
let refreshTimer = null;

function rows() {
  return Array.from(region.querySelectorAll("tbody tr[data-report]"));
}

function select(row, focus) {
  for (const r of rows()) { r.classList.remove("selected"); r.removeAttribute("aria-selected"); }
  if (!row) return;
  row.classList.add("selected");
  row.setAttribute("aria-selected", "true");
  selectedId = row.dataset.report;
  if (focus) { row.focus(); row.scrollIntoView({ block: "nearest" }); }
}

function move(delta) {
  const list = rows();
  if (!list.length) return;
  const at = list.findIndex((r) => r.dataset.report === selectedId);
  const next = at < 0 ? 0 : Math.min(list.length - 1, Math.max(0, at + delta));
  select(list[next], true);
}

function selectedRow() {
  return rows().find((r) => r.dataset.report === selectedId) || null;
}

document.addEventListener("keydown", (e) => {
  if (e.ctrlKey || e.metaKey || e.altKey || e.target.closest("input, select, textarea, button")) return;
  if (e.key === "j" || e.key === "ArrowDown") { e.preventDefault(); move(1); }
  else if (e.key === "k" || e.key === "ArrowUp") { e.preventDefault(); move(-1); }
  else if (e.key === "Enter" && !e.target.closest("a")) {
    const row = selectedRow();
    if (row) { e.preventDefault(); window.location.href = row.dataset.url; }
  }
});

region.addEventListener("click", (e) => {
  const row = e.target.closest("tr[data-report]");
  if (row && !e.target.closest("a")) window.location.href = row.dataset.url;
});

async function refresh() {
  const params = new URLSearchParams(window.location.search);
  params.set("partial", "1");
  try {
    const response = await fetch("?" + params.toString(), { credentials: "same-origin" });
    if (response.redirected || !response.ok) {
      // Signed out or the second factor expired: let the server say where to go.
      if (response.redirected) window.location.reload();
      return;
    }
    region.innerHTML = await response.text();
    select(selectedRow(), false);
    live.textContent = live.dataset.labelUpdated + "（" + new Date().toLocaleTimeString() + "）";
  } catch (err) {
    /* offline for a moment: the next message or poll tries again */
  }
}

function soon() {
  // Several messages arrive together when a draft finishes: fetch once.
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(refresh, 250);
}

function poll(on) {
  if (on && !pollTimer) pollTimer = setInterval(refresh, POLL_MS);
  if (!on && pollTimer) { clearInterval(pollTimer); pollTimer = null; }
}

function connect() {
  let ws;
  try {
    ws = new WebSocket((window.location.protocol === "https:" ? "wss://" : "ws://") + window.location.host + live.dataset.ws);
  } catch (err) {
    poll(true);
    return;
  }
  ws.addEventListener("open", () => {
    if (region.dataset.live === "poll") soon();  // reconnected: catch up on what was missed
    poll(false);
    retryMs = 2000;
    region.dataset.live = "ws";
    live.textContent = "";
  });
  ws.addEventListener("message", (e) => {
    const m = JSON.parse(e.data);
    if (m.type === "worklist.report" || m.type === "worklist.draft") soon();
  });
  ws.addEventListener("close", (e) => {
    region.dataset.live = "poll";
    live.textContent = live.dataset.labelOffline;
    poll(true);
    // 4xxx: the server closed it on purpose; asking again would only add refusals to the audit log.
    if (e.code >= 4000) return;
    setTimeout(connect, retryMs);
    retryMs = Math.min(RETRY_MAX_MS, retryMs * 2);
  });
}

select(rows()[0] || null, false);
if (live.dataset.ws) connect();  // only physicians have a live feed (the server says so)
