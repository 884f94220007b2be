// The physician's worklist, fed live by ws/worklist/: new or changed drafts appear at the top.
(function () {
  const live = document.getElementById("worklist-live");
  const body = document.querySelector("#worklist tbody");
  if (!live || !body) return;
  function cell(text, cls) { const td = document.createElement("td"); td.textContent = text; if (cls) td.className = cls; return td; }
  function upsert(m) {
    const empty = body.querySelector("tr[data-empty]");
    if (empty) empty.remove();
    let row = body.querySelector('tr[data-job="' + m.job + '"]');
    const fresh = document.createElement("tr");
    fresh.dataset.job = m.job;
    if (m.flagged) fresh.className = "flagged";
    const link = document.createElement("a");
    link.href = m.url; link.textContent = new Date().toLocaleString();
    const first = document.createElement("td"); first.appendChild(link);
    fresh.append(first, cell(m.mrn), cell(m.patient), cell(m.task), cell(m.model), cell(m.status_label, "st-" + m.status),
                 cell(m.flagged ? "⚠" : "—"));
    if (row) row.replaceWith(fresh); else body.prepend(fresh);
    live.textContent = live.dataset.labelNew;
  }
  try {
    const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + live.dataset.ws);
    ws.onmessage = (e) => { const m = JSON.parse(e.data); if (m.type === "worklist.draft") upsert(m); };
  } catch (e) { /* the page still lists drafts; reloading refreshes it */ }
})();
