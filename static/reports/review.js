// The review screen: save (explicit and every few seconds) through the reports API with the revision
// the editor was showing, so a colleague's newer save comes back as a conflict with both texts and is
// never overwritten; the flagged numbers re-drawn after each save (text set with textContent, never
// parsed as HTML); signing in a dialog that asks for the password or a TOTP code again.
// UI text comes from the page (json_script), translated on the server.
const config = JSON.parse(document.getElementById("review-config").textContent);
const L = config.labels;
const $ = (id) => document.getElementById(id);
const text = $("report-text");
const base = $("base-number");
const saveStatus = $("save-status");
const signForm = $("sign-form");
const signOpen = $("sign-open");
const signDialog = $("sign-dialog");
const signError = $("sign-error");
const signStatus = $("sign-status");
const conflictBox = $("conflict");

let head = config.head;
let savedText = text ? text.value : "";
let saving = null;
let conflicted = false;

const fmt = (s, vars) => s.replace(/\{(\w+)\}/g, (_m, k) => (k in vars ? String(vars[k]) : ""));

function csrf() {
  const input = document.querySelector("input[name=csrfmiddlewaretoken]");
  return input ? input.value : "";
}

async function post(url, body) {
  const response = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrf() },
    body: JSON.stringify(body),
  });
  let data = null;
  try { data = await response.json(); } catch (err) { data = null; }
  return { status: response.status, data };
}

function errorOf(data) {
  if (!data) return L.failed;
  if (data.error) return data.error;
  if (data.detail) return data.detail;
  const first = Object.values(data)[0];
  return Array.isArray(first) ? first.join(" ") : L.failed;
}

function setStatus(message, isError) {
  if (!saveStatus) return;
  saveStatus.textContent = message;
  saveStatus.classList.toggle("error", Boolean(isError));
}

const dirty = () => Boolean(text) && text.value !== savedText;

// --- grounding flags ------------------------------------------------------------------------------

function el(tag, attrs, content) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (content !== undefined) node.textContent = content;
  return node;
}

function confirmedKeys() {
  return Array.from(document.querySelectorAll('#flags input[name="confirmed"]:checked')).map((b) => b.value);
}

function renderGrounded(body, issues) {
  // Offsets are in code points (Python str indexes): index an array of code points, not UTF-16.
  const pre = $("grounded-text");
  if (!pre) return;
  const chars = Array.from(body);
  pre.replaceChildren();
  let at = 0;
  for (const issue of [...issues].sort((a, b) => a.start - b.start)) {
    if (issue.start < at || issue.end <= issue.start || issue.end > chars.length) continue;
    if (issue.start > at) pre.append(chars.slice(at, issue.start).join(""));
    pre.append(el("mark", { class: "flag", "data-key": issue.key, title: issue.reason },
      chars.slice(issue.start, issue.end).join("")));
    at = issue.end;
  }
  if (at < chars.length) pre.append(chars.slice(at).join(""));
}

function renderFlags(body, issues) {
  const keep = new Set(confirmedKeys());
  renderGrounded(body, issues);
  const box = $("flags");
  if (!box) return;
  box.replaceChildren();
  if (!issues.length) {
    box.append(el("p", { class: "o-normal" }, L.no_flags));
    updateSign();
    return;
  }
  const list = el("ul", { class: "flags" });
  for (const issue of issues) {
    const item = el("li", { "data-key": issue.key });
    item.append(el("mark", { class: "flag" }, issue.text + (issue.unit ? " " + issue.unit : "")), " " + issue.reason);
    if (issue.sources && issue.sources.length) {
      item.append(el("br"), el("small", {}, L.compare + ": " + issue.sources.map((s) => s.name + " = " + s.value).join("、")));
    }
    if (config.editable) {
      const label = el("label", { class: "confirm" });
      const box2 = el("input", { type: "checkbox", name: "confirmed", value: issue.key, form: "sign-form" });
      box2.checked = keep.has(issue.key);
      label.append(box2, " " + L.confirm);
      item.append(label);
    }
    list.append(item);
  }
  box.append(list);
  updateSign();
}

function renderChanges(changes) {
  const section = $("changes");
  if (!section || !changes) return;
  const table = section.querySelector("table");
  const none = section.querySelector("[data-role=none]");
  const tbody = table.querySelector("tbody");
  tbody.replaceChildren();
  for (const c of changes) {
    const row = el("tr", { class: "c-" + c.status });
    row.append(el("td", {}, c.status_label), el("td", {}, c.before), el("td", {}, c.after));
    tbody.append(row);
  }
  table.hidden = !changes.length;
  if (none) none.hidden = Boolean(changes.length);
}

function updateSign() {
  if (!signOpen) return;
  const boxes = Array.from(document.querySelectorAll('#flags input[name="confirmed"]'));
  const left = boxes.filter((b) => !b.checked).length;
  for (const mark of document.querySelectorAll("#grounded-text mark.flag")) {
    const box = boxes.find((b) => b.value === mark.dataset.key);
    mark.classList.toggle("confirmed", Boolean(box && box.checked));
  }
  signOpen.disabled = left > 0 || conflicted;
  if (signStatus) signStatus.textContent = left > 0 ? fmt(L.flags_left, { n: left }) : L.ready;
}

function showHead(revision) {
  head = revision.number;
  if (base) base.value = head;
  const rev = $("sign-revision");
  if (rev) rev.value = head;
  for (const node of document.querySelectorAll("[data-role=head-label], [data-role=sign-label]")) {
    node.textContent = fmt(L.revision, { n: head });
  }
  const kind = document.querySelector("[data-role=head-kind]");
  if (kind) kind.textContent = revision.kind_label;
  const author = document.querySelector("[data-role=head-author]");
  if (author) author.textContent = revision.author;
}

// --- saving ---------------------------------------------------------------------------------------

function showConflict(data) {
  conflicted = true;
  conflictBox.querySelector("[data-role=message]").textContent = data.error;
  conflictBox.querySelector("[data-role=current-label]").textContent = fmt(L.revision, { n: data.current.number });
  conflictBox.querySelector("[data-role=current]").textContent = data.current.text;
  conflictBox.querySelector("[data-role=yours]").textContent = data.yours || (text ? text.value : "");
  conflictBox.querySelector("[data-role=yours-input]").value = data.yours || (text ? text.value : "");
  conflictBox.querySelector("[data-role=current-input]").value = data.current.number;
  conflictBox.dataset.current = JSON.stringify(data.current);
  conflictBox.hidden = false;
  conflictBox.scrollIntoView({ block: "start", behavior: "smooth" });
  setStatus(L.conflict, true);
  updateSign();
}

function save(autosave) {
  if (!text || conflicted) return Promise.resolve();
  if (saving) return saving.then(() => (dirty() ? save(autosave) : undefined));
  if (autosave && !dirty()) return Promise.resolve();
  const sent = text.value;
  setStatus(L.saving, false);
  saving = post(config.api.revisions, { text: sent, base_number: head, autosave })
    .then(({ status, data }) => {
      if (status === 200 || status === 201) {
        savedText = sent;
        showHead(data.revision);
        renderFlags(data.revision.text, data.revision.issues);
        renderChanges(data.changes);
        const state = $("report-status");
        if (state) { state.textContent = data.report_status_label; state.className = "status st-" + data.report_status; }
        setStatus(data.created ? fmt(autosave ? L.autosaved : L.saved, { n: head }) : "", false);
      } else if (status === 409 && data && data.current) {
        showConflict(data);
      } else {
        setStatus(errorOf(data), true);
      }
    })
    .catch(() => setStatus(L.failed, true))
    .finally(() => { saving = null; });
  return saving;
}

async function reloadHead() {
  const response = await fetch(config.api.report, { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (!response.ok) return;
  const data = await response.json();
  showHead(data.head);
  renderFlags(data.head.text, data.head.issues);
}

if (text) {
  text.addEventListener("input", () => setStatus(L.unsaved, false));
  $("save-form").addEventListener("submit", (e) => { e.preventDefault(); save(false); });
  setInterval(() => { if (dirty() && !conflicted) save(true); }, config.autosave_ms);
  window.addEventListener("beforeunload", (e) => { if (dirty()) e.preventDefault(); });
}

if (conflictBox) {
  $("conflict-theirs").addEventListener("click", async () => {
    const current = JSON.parse(conflictBox.dataset.current || "null");
    if (current && text) {
      text.value = current.text;
      savedText = current.text;
    }
    conflicted = false;
    conflictBox.hidden = true;
    await reloadHead();
    setStatus("", false);
  });
  $("conflict-mine-form").addEventListener("submit", (e) => {
    if (!text) return;
    e.preventDefault();
    // The physician saw both texts and chose theirs to build on: save it on top of the newer one.
    head = Number(conflictBox.querySelector("[data-role=current-input]").value);
    text.value = conflictBox.querySelector("[data-role=yours-input]").value;
    conflicted = false;
    conflictBox.hidden = true;
    save(false);
  });
}

// --- signing --------------------------------------------------------------------------------------

if (signForm) {
  document.getElementById("flags").addEventListener("change", updateSign);
  signOpen.addEventListener("click", async () => {
    if (dirty()) await save(false);  // sign what is on screen, saved first
    if (conflicted || signOpen.disabled) return;
    signError.hidden = true;
    signDialog.showModal();
    $("sign-credential").focus();
  });
  $("sign-cancel").addEventListener("click", () => signDialog.close());
  signForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    const credential = $("sign-credential");
    const method = signForm.querySelector('input[name="method"]:checked').value;
    const submit = $("sign-submit");
    submit.disabled = true;
    signStatus.textContent = L.signing;
    try {
      const { status, data } = await post(config.api.sign, {
        revision_number: head, method, credential: credential.value, confirmed: confirmedKeys(),
      });
      if (status === 200) {
        signStatus.textContent = L.signed;
        window.location.assign(window.location.pathname);  // the signed, read-only screen
        return;
      }
      credential.value = "";
      if (status === 409 && data && data.current) {
        signDialog.close();
        showConflict(data);
      } else {
        signError.textContent = errorOf(data);
        signError.hidden = false;
        credential.focus();
      }
    } catch (err) {
      signError.textContent = L.failed;
      signError.hidden = false;
    } finally {
      submit.disabled = false;
    }
  });
  updateSign();
}

// --- next / previous draft ------------------------------------------------------------------------

async function go(url) {
  if (!url) return;
  if (dirty()) await save(false);
  window.location.assign(url);
}

for (const [id, url] of [["nav-prev", config.prev], ["nav-next", config.next]]) {
  const link = $(id);
  if (link) link.addEventListener("click", (e) => { e.preventDefault(); go(url); });
}

document.addEventListener("keydown", (e) => {
  if ((e.ctrlKey || e.metaKey) && e.key === "s" && text) {
    e.preventDefault();
    save(false);
    return;
  }
  if (e.altKey && e.shiftKey && (e.code === "KeyN" || e.code === "KeyP")) {
    e.preventDefault();
    go(e.code === "KeyN" ? config.next : config.prev);
    return;
  }
  if (e.ctrlKey || e.metaKey || e.altKey || e.target.closest("input, textarea, select, button, dialog")) return;
  if (e.key === "n") go(config.next);
  else if (e.key === "p") go(config.prev);
});
