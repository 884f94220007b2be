// Batch print progress, polled from the job row (the truth). No inline script (CSP).
(function () {
  const root = document.getElementById("print-progress");
  if (!root || root.dataset.final === "1") return;
  const bar = root.querySelector("progress");
  const text = root.querySelector("[data-role=text]");
  const status = root.querySelector("[data-role=status]");
  const unit = root.dataset.unit || "";
  function show(s) {
    if (s.total > 0) { bar.max = s.total; bar.value = s.processed; }
    text.textContent = s.percent + "%（" + s.processed + " / " + s.total + " " + unit + "）";
    status.textContent = s.status_label;
    status.className = "st-" + s.status;
    if (s.finished) { window.location.reload(); return true; }
    return false;
  }
  function poll() {
    fetch(root.dataset.statusUrl, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then((r) => r.json())
      .then((s) => { if (!show(s)) setTimeout(poll, 1000); })
      .catch(() => setTimeout(poll, 3000));
  }
  setTimeout(poll, 500);
})();
