// Back office de la carte régionale : vanilla JS over the JSON API (no build step, no CDN).
// Supervisors act; auditors read (every ".write" element is hidden for them, and the API refuses
// them anyway); agents are sent to the desk page.
"use strict";

const IDLE_LOCK_MS = 1000 * Number(document.body.dataset.idleLockSeconds || 300);
const $ = (id) => document.getElementById(id);
const TOKEN = "regioncard.backoffice.token";
let state = { me: null, labels: null, urls: [] };

function token() { return sessionStorage.getItem(TOKEN); }
function show(id, visible) { $(id).hidden = !visible; }
function showError(message) { $("error").textContent = message || ""; show("error", !!message); }
function notice(message) { $("notice").textContent = message || ""; show("notice", !!message); }

async function call(method, path, body) {
  const headers = { Authorization: "Bearer " + token() };
  const init = { method, headers };
  if (body !== undefined) { headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
  const answer = await fetch(path, init);
  if (answer.status === 401) { logout("Session expirée : reconnectez-vous"); throw new Error("Session expirée : reconnectez-vous"); }
  const data = answer.status === 204 ? null : await answer.json();
  if (!answer.ok) throw new Error((data && data.message_fr) || "Erreur " + answer.status);
  return data;
}

// Every page of a paged list (?limit=/&offset=, total in X-Total-Count): lists such as the
// terminals or the deny-list can exceed the API's default page of 100.
const PAGE = 1000;
async function callAll(path) {
  const items = [];
  for (;;) {
    const page = path + (path.includes("?") ? "&" : "?") + "limit=" + PAGE + "&offset=" + items.length;
    const answer = await fetch(page, { headers: { Authorization: "Bearer " + token() } });
    if (answer.status === 401) { logout("Session expirée : reconnectez-vous"); throw new Error("Session expirée : reconnectez-vous"); }
    const data = await answer.json();
    if (!answer.ok) throw new Error((data && data.message_fr) || "Erreur " + answer.status);
    items.push(...data);
    const total = Number(answer.headers.get("X-Total-Count"));
    if (data.length === 0 || !(items.length < total)) return items;
  }
}

async function blobUrl(path) {
  const answer = await fetch(path, { headers: { Authorization: "Bearer " + token() } });
  if (!answer.ok) throw new Error("Téléchargement refusé (" + answer.status + ")");
  const url = URL.createObjectURL(await answer.blob());
  state.urls.push(url);
  return url;
}

function euros(cents) {
  const sign = cents < 0 ? "-" : "";
  const abs = Math.abs(cents);
  return sign + Math.floor(abs / 100).toLocaleString("fr-FR") + "," + String(abs % 100).padStart(2, "0") + " €";
}

function parseEuros(text) {
  const value = String(text || "").trim();
  if (value === "") return 0;
  const match = /^(\d{1,6})(?:[.,](\d{1,2}))?$/.exec(value);
  if (!match) return null;
  return Number(match[1]) * 100 + Number((match[2] || "").padEnd(2, "0"));
}

function when(iso) { return iso ? new Date(iso).toLocaleString("fr-FR", { timeZone: "Europe/Paris" }) : "—"; }

function cell(content, className) {
  const td = document.createElement("td");
  if (className) td.className = className;
  if (content instanceof Node) td.append(content); else td.textContent = content === null || content === undefined ? "—" : String(content);
  return td;
}

function row(cells) { const tr = document.createElement("tr"); tr.append(...cells); return tr; }

function button(text, handler, className) {
  const b = document.createElement("button");
  b.type = "button"; b.textContent = text; b.className = className || "secondary";
  b.addEventListener("click", handler);
  return b;
}

// A French label with its code in small print.
function labelled(label, code) {
  const span = document.createElement("span");
  span.append(label);
  if (code && code !== label) {
    const small = document.createElement("small");
    small.className = "code"; small.textContent = code;
    span.append(" ", small);
  }
  return span;
}

function fill(tbodyParent, rows, emptyText, columns) {
  const body = $(tbodyParent).tagName === "TBODY" ? $(tbodyParent) : $(tbodyParent).querySelector("tbody");
  body.replaceChildren(...rows);
  if (!rows.length) {
    const td = cell(emptyText); td.colSpan = columns; td.className = "empty";
    body.replaceChildren(row([td]));
  }
}

// -- session ---------------------------------------------------------------------------------
function logout(message) {
  sessionStorage.removeItem(TOKEN);
  for (const url of state.urls) URL.revokeObjectURL(url);
  state = { me: null, labels: null, urls: [] };
  for (const form of document.querySelectorAll("form")) form.reset();
  for (const body of document.querySelectorAll("tbody")) body.replaceChildren();
  for (const tab of document.querySelectorAll(".tab")) tab.hidden = true;
  for (const id of ["tabs", "denied", "logout", "who", "credential", "history", "settlements"]) show(id, false);
  for (const img of document.querySelectorAll("img")) img.removeAttribute("src");
  show("login-screen", true);
  showError(""); notice(message || "");
}

let idleTimer = null;
function touch() {
  clearTimeout(idleTimer);
  if (token()) idleTimer = setTimeout(() => { if (token()) logout("Session verrouillée après inactivité : reconnectez-vous"); }, IDLE_LOCK_MS);
}
for (const kind of ["keydown", "pointerdown", "input"]) document.addEventListener(kind, touch, true);

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  showError(""); notice("");
  const form = new FormData(event.target);
  event.target.reset();
  const answer = await fetch("/api/v1/auth/token", { method: "POST", body: new URLSearchParams(form) });
  const data = await answer.json();
  if (!answer.ok) { showError(data.message_fr || "Identifiant ou mot de passe incorrect"); return; }
  sessionStorage.setItem(TOKEN, data.access_token);
  try { await enter(); } catch (error) { showError(error.message); }
});

$("logout").addEventListener("click", () => logout("Vous êtes déconnecté·e"));

async function enter() {
  state.me = await call("GET", "/api/v1/auth/me");
  state.labels = await call("GET", "/api/v1/labels");
  const role = state.me.role;
  $("who").textContent = (state.labels.roles[role] || role) + " : " + state.me.username;
  show("who", true); show("logout", true); show("login-screen", false);
  touch();
  if (role !== "supervisor" && role !== "auditor") { show("denied", true); return; }
  document.body.dataset.role = role;
  for (const b of document.querySelectorAll("#tabs button")) b.hidden = !!b.dataset.role && b.dataset.role !== role;
  const kinds = $("anomaly-kind");
  kinds.replaceChildren(new Option("tous", ""), ...Object.entries(state.labels.anomaly_kinds).map(([k, v]) => new Option(v, k)));
  show("tabs", true);
  await openTab("terminals");
}

for (const b of document.querySelectorAll("#tabs button")) {
  b.addEventListener("click", () => openTab(b.dataset.tab).catch((error) => showError(error.message)));
}

async function openTab(name) {
  showError("");
  for (const tab of document.querySelectorAll(".tab")) tab.hidden = tab.id !== "tab-" + name;
  for (const b of document.querySelectorAll("#tabs button")) b.classList.toggle("current", b.dataset.tab === name);
  await LOADERS[name]();
}

const writer = () => state.me && state.me.role === "supervisor";

// -- terminals -------------------------------------------------------------------------------
async function loadTerminals() {
  const terminals = await callAll("/api/v1/back-office/terminals");
  fill("terminals", terminals.map((t) => row([
    cell(labelled(t.label || t.terminal_id, t.label ? t.terminal_id : "")),
    cell(t.kind_fr),
    cell(t.school_uai || (t.station_id ? "gare " + t.station_id : "—")),
    cell(t.active ? "en service" : "révoqué", t.active ? "ok" : "off"),
    cell(t.last_upload_at ? when(t.last_upload_at) : "jamais"),
    cell(t.open_gaps, t.open_gaps ? "warn" : ""),
    cell(writer() && t.active ? terminalActions(t) : "", "write"),
  ])), "Aucun terminal enregistré", 7);
}

function terminalActions(t) {
  const span = document.createElement("span");
  span.append(button("Nouvel identifiant", async () => {
    if (!confirm("Donner un nouvel identifiant à " + t.terminal_id + " ? L'ancien cesse de fonctionner.")) return;
    try { showSecret(t.terminal_id, (await call("POST", "/api/v1/terminals/" + encodeURIComponent(t.terminal_id) + "/credential")).credential); } catch (error) { showError(error.message); }
  }));
  span.append(button("Révoquer", async () => {
    if (!confirm("Révoquer " + t.terminal_id + " ? Ses envois et son identifiant seront refusés.")) return;
    try { await call("POST", "/api/v1/terminals/" + encodeURIComponent(t.terminal_id) + "/deactivate"); notice("Terminal " + t.terminal_id + " révoqué"); await loadTerminals(); } catch (error) { showError(error.message); }
  }));
  return span;
}

function showSecret(terminalId, credential) {
  $("credential").textContent = "Identifiant de " + terminalId + " (affiché une seule fois, à copier dans le terminal) : " + credential;
  show("credential", true);
}

$("terminal-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  showError("");
  const body = {};
  for (const [key, value] of new FormData(event.target)) {
    const text = String(value).trim();
    if (!text) continue;
    body[key] = key === "station_id" ? Number(text) : text;
  }
  try {
    const made = await call("POST", "/api/v1/terminals", body);
    event.target.reset();
    showSecret(made.terminal_id, made.credential);
    await loadTerminals();
  } catch (error) { showError(error.message); }
});

// -- catalogue -------------------------------------------------------------------------------
async function loadCatalogue() {
  const products = await callAll("/api/v1/products/all");
  fill("products", products.map((p) => row([
    cell(p.code), cell(labelled(p.name, p.fare_product_id)), cell(state.labels.applications[p.application] || p.application),
    cell(euros(p.amount_cents)), cell(p.active ? "en vente" : "retiré", p.active ? "ok" : "off"),
    cell(productActions(p)),
  ])), "Catalogue vide : créez un premier produit ci-dessous", 6);
}

function productActions(p) {
  const span = document.createElement("span");
  span.append(button("Historique des prix", () => priceHistory(p).catch((error) => showError(error.message))));
  if (writer() && p.active) {
    span.append(button("Changer le prix", async () => {
      const cents = parseEuros(prompt("Nouveau prix de « " + p.name + " » en euros (par ex. 47,50)") || "");
      if (cents === null) { showError("Prix ambigu : écrivez les euros, par exemple 47,50"); return; }
      try { await call("POST", "/api/v1/products/" + p.code + "/price", { amount_cents: cents }); await loadCatalogue(); } catch (error) { showError(error.message); }
    }, "secondary write"));
    span.append(button("Retirer de la vente", async () => {
      if (!confirm("Retirer « " + p.name + " » de la vente ? Les titres déjà vendus restent valables.")) return;
      try { await call("POST", "/api/v1/products/" + p.code + "/deactivate"); await loadCatalogue(); } catch (error) { showError(error.message); }
    }, "secondary write"));
  }
  return span;
}

const HISTORY = { "product.create": "création", "product.price": "changement de prix", "product.deactivate": "retrait de la vente" };

async function priceHistory(p) {
  const events = await callAll("/api/v1/products/" + p.code + "/history");
  $("history-title").textContent = "Historique de « " + p.name + " »";
  $("history-lines").replaceChildren(...events.map((e) => Object.assign(document.createElement("li"), {
    textContent: when(e.at) + " — " + (HISTORY[e.action] || e.action) + " — " + e.detail.replace(/(\d+) c/g, (_, c) => euros(Number(c))) + " (" + e.by + ")",
  })));
  if (!events.length) $("history-lines").replaceChildren(Object.assign(document.createElement("li"), { textContent: "Aucun changement enregistré" }));
  show("history", true);
}

$("product-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  showError("");
  const form = new FormData(event.target);
  const cents = parseEuros(form.get("amount_cents"));
  if (cents === null) { showError("Prix ambigu : écrivez les euros, par exemple 45,00"); return; }
  const body = { code: Number(form.get("code")), fare_product_id: String(form.get("fare_product_id")).trim(),
    name: String(form.get("name")).trim(), application: form.get("application"), amount_cents: cents };
  for (const key of ["duration_days", "trips"]) if (String(form.get(key)).trim()) body[key] = Number(form.get(key));
  try { await call("POST", "/api/v1/products", body); event.target.reset(); await loadCatalogue(); } catch (error) { showError(error.message); }
});

// -- deny-list -------------------------------------------------------------------------------
async function loadDenyList() {
  const current = await call("GET", "/api/v1/back-office/deny-list");
  $("deny-version").textContent = current.version
    ? "Version en vigueur : " + current.version + ", signée le " + when(current.issued_at) + " — " + current.entries.length + " carte(s)"
    : "Aucune version publiée";
  const entries = await callAll("/api/v1/deny-lists/entries");
  fill("deny-entries", entries.map((e) => row([cell(e.card_serial), cell(e.reason), cell(e.added_version), cell(when(e.added_at))])),
    "Aucune carte en opposition", 4);
}

$("deny-push").addEventListener("click", async () => {
  try { const v = await call("POST", "/api/v1/deny-lists/publish"); notice("Version " + v.version + " publiée : envoyée aux terminaux à leur prochaine mise à jour"); await loadDenyList(); } catch (error) { showError(error.message); }
});

// -- anomalies -------------------------------------------------------------------------------
async function loadAnomalies() {
  const query = new URLSearchParams({ limit: "500" });
  for (const [key, value] of new FormData($("anomaly-filter"))) if (String(value).trim()) query.set(key, String(value).trim());
  const anomalies = await call("GET", "/api/v1/reconciliation/anomalies?" + query);
  fill("anomalies", anomalies.map((a) => {
    const tr = row([
      cell(a.id), cell(labelled(a.kind_fr, a.kind)), cell(a.terminal_id), cell(a.card_pseudonym ? a.card_pseudonym.slice(0, 12) + "…" : "—"),
      cell(when(a.detected_at)), cell(a.resolved ? "résolue" : "ouverte", a.resolved ? "ok" : "warn"),
      cell(a.resolved ? (a.resolution || "") : a.detail),
      cell(writer() && !a.resolved ? resolveForm(a) : "", "write"),
    ]);
    tr.className = a.resolved ? "resolved" : "open";
    return tr;
  }), "Aucune anomalie pour ces critères", 8);
}

function resolveForm(a) {
  const span = document.createElement("span");
  const input = document.createElement("input");
  input.placeholder = "motif"; input.setAttribute("aria-label", "Motif de résolution de l'anomalie " + a.id);
  span.append(input, button("Résoudre", async () => {
    if (input.value.trim().length < 3) { showError("Motif de résolution obligatoire"); return; }
    try { await call("POST", "/api/v1/reconciliation/anomalies/" + a.id + "/resolve", { reason: input.value.trim() }); notice("Anomalie " + a.id + " résolue"); await loadAnomalies(); } catch (error) { showError(error.message); }
  }));
  return span;
}

$("anomaly-filter").addEventListener("submit", (event) => { event.preventDefault(); loadAnomalies().catch((error) => showError(error.message)); });

// -- reconciliation --------------------------------------------------------------------------
function period(form) {
  const data = new FormData(form);
  const from = data.get("from"), to = data.get("to");
  if (!from || !to) return null;
  const end = new Date(to + "T00:00:00Z"); end.setUTCDate(end.getUTCDate() + 1);
  return { start: from + "T00:00:00Z", end: end.toISOString() };
}

async function loadReconciliation() {
  const range = period($("period-form"));
  if (!range) { notice("Choisissez une période (du … au …) puis « Afficher »"); return; }
  const query = "?" + new URLSearchParams(range);
  const operators = await call("GET", "/api/v1/reconciliation/operators" + query);
  const schools = await call("GET", "/api/v1/reconciliation/schools" + query);
  const merchants = await call("GET", "/api/v1/reconciliation/merchants" + query);
  const codes = Object.keys(operators.operators).map((op) => "operator:" + op);
  for (const amounts of Object.values(schools.schools)) codes.push(...Object.keys(amounts));
  codes.push(...Object.keys(schools.by_funder));
  const names = await accountLabels(codes);
  fill("rec-operators", Object.entries(operators.operators).map(([op, v]) => row([
    cell(labelled(names["operator:" + op], op)), cell(v.taps), cell(v.pass_validations), cell(euros(v.revenue))])), "Aucun passage sur la période", 4);
  const schoolRows = [];
  for (const [uai, amounts] of Object.entries(schools.schools)) {
    for (const [payer, amount] of Object.entries(amounts)) schoolRows.push(row([cell(uai), cell(labelled(names[payer], payer)), cell(euros(amount))]));
  }
  fill("rec-schools", schoolRows, "Aucune dépense en établissement sur la période", 3);
  fill("rec-funders", Object.entries(schools.by_funder).map(([funder, amount]) => row([cell(labelled(names[funder], funder)), cell(euros(amount))])),
    "Aucun financeur sollicité sur la période", 2);
  const merchantRows = [];
  for (const [tid, amounts] of Object.entries(merchants.merchants)) {
    for (const [purpose, amount] of Object.entries(amounts)) merchantRows.push(row([cell(tid), cell(state.labels.aid_purposes[purpose] || purpose), cell(euros(amount))]));
  }
  fill("rec-merchants", merchantRows, "Aucune aide dépensée chez un commerçant sur la période", 3);
}

// French labels come from the backend (backend/labels.py), defined once for every page.
async function accountLabels(codes) {
  const unique = [...new Set(codes)];
  if (!unique.length) return {};
  const query = new URLSearchParams();
  for (const code of unique) query.append("account", code);
  return call("GET", "/api/v1/labels/accounts?" + query);
}

$("period-form").addEventListener("submit", (event) => { event.preventDefault(); notice(""); loadReconciliation().catch((error) => showError(error.message)); });

// -- clearing ----------------------------------------------------------------------------------
async function loadClearing() {
  const periods = await callAll("/api/v1/reconciliation/clearing");
  fill("periods", periods.map((p) => row([
    cell(p.period_id), cell(when(p.start)), cell(when(p.end)), cell(when(p.closed_at)),
    cell(statementLinks(p.period_id)),
  ])), "Aucune période clôturée", 5);
}

function statementLinks(periodId) {
  const span = document.createElement("span");
  span.append(button("Voir", () => showSettlements(periodId).catch((error) => showError(error.message))));
  for (const [kind, label] of [["csv", "Relevé CSV"], ["pdf", "Relevé PDF"]]) {
    span.append(button(label, async () => {
      try {
        const link = document.createElement("a");
        link.href = await blobUrl("/api/v1/reconciliation/clearing/" + encodeURIComponent(periodId) + "/statement." + kind);
        link.download = "releve-" + periodId + "." + kind;
        document.body.append(link); link.click(); link.remove();
      } catch (error) { showError(error.message); }
    }));
  }
  return span;
}

async function showSettlements(periodId) {
  const lines = await call("GET", "/api/v1/reconciliation/clearing/" + encodeURIComponent(periodId));
  const names = await accountLabels(lines.flatMap((s) => [s.account, s.payer, s.payee]));
  $("settlements-title").textContent = "Règlements de la période " + periodId;
  fill("settlement-lines", lines.map((s) => row([cell(labelled(names[s.account], s.account)), cell(labelled(names[s.payer], s.payer)),
    cell(labelled(names[s.payee], s.payee)), cell(euros(s.amount))])), "Aucun règlement", 4);
  show("settlements", true);
}

$("clearing-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  showError("");
  const form = new FormData(event.target);
  const range = period(event.target);
  const pool = parseEuros(form.get("pass_pool"));
  if (!range) { showError("Choisissez le début et la fin de la période"); return; }
  if (pool === null) { showError("Montant ambigu : écrivez les euros, par exemple 1250,00"); return; }
  try {
    await call("POST", "/api/v1/reconciliation/clearing", { period_id: String(form.get("period_id")).trim(), ...range, pass_pool: pool });
    notice("Période " + form.get("period_id") + " clôturée");
    event.target.reset();
    await loadClearing();
  } catch (error) { showError(error.message); }
});

// -- plots -----------------------------------------------------------------------------------
async function loadPlots() {
  for (const [id, name] of [["plot-taps", "taps-per-hour"], ["plot-revenue", "revenue-per-operator"], ["plot-anomalies", "anomalies-per-day"]]) {
    $(id).src = await blobUrl("/api/v1/back-office/plots/" + name + ".png");
  }
}

// -- audit log -------------------------------------------------------------------------------
async function loadAudit() {
  const query = new URLSearchParams({ limit: "500" });
  for (const [key, value] of new FormData($("audit-filter"))) {
    if (!String(value).trim()) continue;
    query.set(key, key === "since" ? value + "T00:00:00Z" : String(value).trim());
  }
  const rows = await call("GET", "/api/v1/audit?" + query);
  fill("audit", rows.map((r) => row([cell(when(r.at)), cell(r.agent), cell(state.labels.roles[r.role] || r.role), cell(r.action), cell(r.subject), cell(r.reason)])),
    "Aucune entrée pour ces critères", 6);
}

$("audit-filter").addEventListener("submit", (event) => { event.preventDefault(); loadAudit().catch((error) => showError(error.message)); });

const LOADERS = { terminals: loadTerminals, catalogue: loadCatalogue, denylist: loadDenyList, anomalies: loadAnomalies,
  reconciliation: loadReconciliation, clearing: loadClearing, plots: loadPlots, audit: loadAudit };

if (token()) enter().catch(() => logout());
