// Import progress: websocket first (live), JSON polling as the fallback. No inline script (CSP).
(function () {
  const root = document.getElementById("import-progress");
  if (!root) return;
  const bar = root.querySelector("progress");
  const text = root.querySelector("[data-role=text]");
  const status = root.querySelector("[data-role=status]");
  const url = root.dataset.statusUrl;
  let done = false;
  function show(s) {
    if (typeof s.total === "number" && s.total > 0) { bar.max = s.total; bar.value = s.processed || 0; }
    text.textContent = (s.percent || 0) + "%（" + (s.processed || 0) + " / " + (s.total || "?") + " 行）";
    if (s.status && status.dataset.status !== s.status) {
      status.dataset.status = s.status;
      status.textContent = root.dataset["label" + s.status[0].toUpperCase() + s.status.slice(1)] || s.status;
    }
    if (s.status === "succeeded" || s.status === "failed") {
      if (!done) { done = true; window.location.reload(); }
    }
  }
  function poll() {
    if (done) return;
    fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then((r) => r.json()).then(show).catch(() => {}).finally(() => setTimeout(poll, 2000));
  }
  if (root.dataset.final === "1") return;
  try {
    const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + root.dataset.ws);
    ws.onmessage = (e) => show(JSON.parse(e.data));
    ws.onerror = () => poll();
    ws.onclose = (e) => { if (!done && e.code !== 1000) poll(); };
  } catch (e) { poll(); }
})();
