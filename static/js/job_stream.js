// A job's draft appearing token by token: websocket first, JSON polling as the fallback. No inline
// script (CSP). Every delta carries its offset in the text, so repeats and reconnects never
// duplicate or lose text: the client replaces everything from the offset on.
(function () {
  const root = document.getElementById("job-stream");
  if (!root) return;
  const bar = root.querySelector("progress");
  const out = root.querySelector("[data-role=text]");
  const status = root.querySelector("[data-role=status]");
  const tokens = root.querySelector("[data-role=tokens]");
  const error = root.querySelector("[data-role=error]");
  const url = root.dataset.statusUrl;
  let text = out.textContent;
  let done = root.dataset.final === "1";
  let polling = false;
  let retries = 0;

  function put(offset, piece) {
    if (offset > text.length) return false;
    text = text.slice(0, offset) + piece;
    out.textContent = text;
    return true;
  }
  function meta(s) {
    if (typeof s.progress === "number") bar.value = s.progress;
    if (typeof s.completion_tokens === "number") tokens.textContent = s.completion_tokens;
  }
  function state(s) {
    meta(s);
    text = "";
    put(0, s.text || "");
    if (s.status && status.dataset.status !== s.status) {
      status.dataset.status = s.status;
      status.className = "st-" + s.status;
      status.textContent = s.status_label || s.status;
    }
    if (s.error) { error.hidden = false; error.textContent = error.textContent.split(":")[0] + ": " + s.error; }
    if (s.final && !done) { done = true; window.location.reload(); }
  }
  function onMessage(m) {
    if (m.type === "job.token") { meta(m); put(m.offset, m.text); }
    else if (m.type === "job.state") state(m);
  }
  function poll() {
    if (done || polling) return;
    polling = true;
    const tick = () => {
      if (done) return;
      fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then((r) => r.json()).then(state).catch(() => {}).finally(() => setTimeout(tick, 1000));
    };
    tick();
  }
  function connect() {
    if (done) return;
    let ws;
    try {
      ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + root.dataset.ws);
    } catch (e) { poll(); return; }
    ws.onopen = () => { retries = 0; };
    ws.onmessage = (e) => onMessage(JSON.parse(e.data));
    ws.onclose = (e) => {
      if (done || e.code === 4404 || e.code === 1000) return;
      // Reconnect a few times (the server resends the persisted text first), then poll.
      if (retries++ < 3) setTimeout(connect, 500 * retries); else poll();
    };
  }
  if (!done) connect();
})();
