// Guichet de la carte régionale : vanilla JS over the JSON API (no build step, no CDN).
"use strict";

const API = document.body.dataset.api;
const IDLE_LOCK_MS = 1000 * Number(document.body.dataset.idleLockSeconds || 300);
const $ = (id) => document.getElementById(id);
const TOKEN = "regioncard.token";
const APPS = { plum: "PLUM", wallet: "Ma région numérique", cursus: "Cursus", employment: "Mes droits pour l'emploi" };
const KINDS = { issue: "Émission", update: "Mise à jour", replace: "Remplacement" };
// French labels of states, purses and aid purposes: GET /api/v1/labels (backend/labels.py).
let LABELS = { card_statuses: {}, job_statuses: {}, purses: {}, aid_purposes: {} };

function freshState() {
  return { me: null, holder: null, reason: "", mode: "issue", card: null, products: [], timer: null,
    pending: null, job: null, urls: [] };
}
let state = freshState();

function token() { return sessionStorage.getItem(TOKEN); }

function showError(message) {
  const box = $("error");
  box.textContent = message || "";
  box.hidden = !message;
}

function notice(message) {
  $("notice").textContent = message || "";
  $("notice").hidden = !message;
}

// An API refusal: its French message, and the fields at fault (shown beside them).
class ApiError extends Error {
  constructor(message, fields) { super(message); this.fields = fields || []; }
}

async function call(method, path, body) {
  const headers = { Authorization: "Bearer " + token() };
  const init = { method, headers };
  if (body !== undefined) { headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
  const answer = await fetch(path, init);
  if (answer.status === 401) { logout("Session expirée : reconnectez-vous"); throw new ApiError("Session expirée : reconnectez-vous"); }
  const data = answer.status === 204 ? null : await answer.json();
  if (!answer.ok) throw new ApiError((data && data.message_fr) || "Erreur " + answer.status, data && data.fields);
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
    if (answer.status === 401) { logout("Session expirée : reconnectez-vous"); throw new ApiError("Session expirée : reconnectez-vous"); }
    const data = await answer.json();
    if (!answer.ok) throw new ApiError((data && data.message_fr) || "Erreur " + answer.status);
    items.push(...data);
    const total = Number(answer.headers.get("X-Total-Count"));
    if (data.length === 0 || !(items.length < total)) return items;
  }
}

function euros(cents) { return (cents / 100).toFixed(2).replace(".", ",") + " €"; }

function show(id, visible) { $(id).hidden = !visible; }

// -- money typed the French way --------------------------------------------------------------
// « 1,50 », « 1.50 » and « 1 » are euros; anything else (« 1.500 », « 1,5,0 », « 1 000 », « 1e3 »)
// is ambiguous and refused beside the field: never a silent 150 €.
function parseEuros(text) {
  const value = String(text || "").trim();
  if (value === "") return 0;
  const match = /^(\d{1,6})(?:[.,](\d{1,2}))?$/.exec(value);
  if (!match) return null;
  return Number(match[1]) * 100 + Number((match[2] || "").padEnd(2, "0"));
}

// -- errors beside the field ---------------------------------------------------------------
function clearFieldErrors(root) {
  for (const span of (root || document).querySelectorAll(".field-error")) span.remove();
  for (const input of (root || document).querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
}

function fieldError(input, message) {
  const span = document.createElement("span");
  span.className = "field-error"; span.setAttribute("role", "alert"); span.textContent = message;
  input.setAttribute("aria-invalid", "true");
  input.closest("label").after(span);
}

// Show an API error: beside each field named (in ``root``), else in the banner.
function showApiError(error, root) {
  const placed = [];
  for (const f of (error.fields || [])) {
    const input = root && root.querySelector("[name=" + CSS.escape(f.field) + "]");
    if (input) { fieldError(input, f.message_fr); placed.push(f); }
  }
  if (!placed.length) showError(error.message);
}

// -- session: login, logout, idle lock -------------------------------------------------------
function resetScreens() {
  clearInterval(state.timer);
  for (const url of state.urls) URL.revokeObjectURL(url);
  for (const form of document.querySelectorAll("form")) form.reset();
  for (const id of ["results", "cards", "jobs", "confirm-lines", "desk", "contracts"]) $(id).replaceChildren();
  for (const id of ["holder-name", "duplicate-warning", "job-message", "confirm-total", "block-serial", "unblock-serial", "who"]) $(id).textContent = "";
  for (const id of ["holder-panel", "job-form", "confirm-panel", "progress-panel", "block-panel", "unblock-panel",
    "duplicate-warning", "desk-empty", "catalogue-empty", "job-retry", "receipt"]) show(id, false);
  $("receipt").removeAttribute("href");
  $("holder-edit").open = false;
  clearFieldErrors();
  showError(""); notice("");
  state = freshState();
}

function logout(message) {
  sessionStorage.removeItem(TOKEN);
  resetScreens();
  show("login-screen", true); show("desk-screen", false); show("logout", false); show("who", false);
  if (message) notice(message);
}

let idleTimer = null;
function touch() {
  clearTimeout(idleTimer);
  if (!token()) return;
  idleTimer = setTimeout(() => {
    if (token()) logout("Session verrouillée après " + Math.round(IDLE_LOCK_MS / 60000 * 10) / 10 +
      " min d'inactivité : reconnectez-vous");
  }, IDLE_LOCK_MS);
}
for (const kind of ["keydown", "pointerdown", "input"]) document.addEventListener(kind, touch, true);

async function enter() {
  const me = await call("GET", "/api/v1/auth/me");
  state.me = me;
  LABELS = await call("GET", "/api/v1/labels");
  $("who").textContent = "Agent : " + me.username;
  show("who", true); show("logout", true); show("login-screen", false); show("desk-screen", true);
  const desks = await call("GET", API + "/desks");
  $("desk").replaceChildren(...desks.map((d) => new Option(d, d)));
  show("desk-empty", !desks.length);
  state.products = (await callAll("/api/v1/products")).filter((p) => p.application === "plum");
  $("contracts").replaceChildren(...state.products.map(
    (p) => new Option(p.name + " — " + euros(p.amount_cents), String(p.code))));
  show("catalogue-empty", !state.products.length);
  touch();
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  showError(""); notice("");
  const form = new FormData(event.target);
  event.target.reset();  // the password never stays in the field
  const answer = await fetch("/api/v1/auth/token", { method: "POST", body: new URLSearchParams(form) });
  const data = await answer.json();
  if (!answer.ok) { showError(data.message_fr || "Identifiant ou mot de passe incorrect"); return; }
  sessionStorage.setItem(TOKEN, data.access_token);
  try { await enter(); } catch (error) { showError(error.message); }
});

$("logout").addEventListener("click", () => logout("Vous êtes déconnecté·e"));

// -- holders ---------------------------------------------------------------------------------
function frenchDate(iso) { return new Date(iso + "T12:00:00").toLocaleDateString("fr-FR"); }

function holderLabel(h) {
  return h.anonymous ? "Carte anonyme n° " + h.id : h.given_name + " " + h.family_name +
    (h.birth_date ? " (né·e le " + frenchDate(h.birth_date) + ")" : "");
}

function checkBirthDate(input) {
  if (!input.value) return true;
  const today = new Date().toISOString().slice(0, 10);
  if (input.value > today) { fieldError(input, "date de naissance dans le futur"); return false; }
  if (input.value < "1900-01-01") { fieldError(input, "date de naissance antérieure à 1900"); return false; }
  return true;
}

$("search-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const root = event.target;
  showError(""); clearFieldErrors(root);
  const form = new FormData(root);
  const query = new URLSearchParams();
  for (const [key, value] of form) if (String(value).trim()) query.set(key, String(value).trim());
  if (![...query.keys()].some((k) => k !== "reason")) {
    fieldError(root.querySelector("[name=family_name]"), "indiquez un nom, une date de naissance, un code postal ou un numéro de carte");
    return;
  }
  if (!query.get("reason") || query.get("reason").length < 3) {
    fieldError(root.querySelector("[name=reason]"), "motif obligatoire (au moins 3 caractères), il est enregistré");
    return;
  }
  try {
    const found = await call("GET", "/api/v1/holders?" + query);
    const reason = query.get("reason");
    $("results").replaceChildren(...found.map((h) => {
      const item = document.createElement("li");
      item.append(actionButton(holderLabel(h), () => openHolder(h, reason)));
      return item;
    }));
    if (!found.length) $("results").replaceChildren(Object.assign(document.createElement("li"), { textContent: "Aucun titulaire trouvé" }));
  } catch (error) { showApiError(error, root); }
});

$("holder-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const root = event.target;
  showError(""); clearFieldErrors(root);
  const form = new FormData(root);
  const body = {};
  let ok = true;
  for (const [field, label] of [["family_name", "nom"], ["given_name", "prénom"]]) {
    const value = String(form.get(field) || "").trim();
    if (!value) { fieldError(root.querySelector("[name=" + field + "]"), label + " obligatoire"); ok = false; }
    body[field] = value;
  }
  ok = checkBirthDate(root.querySelector("[name=birth_date]")) && ok;
  if (!ok) return;
  if (form.get("birth_date")) body.birth_date = form.get("birth_date");
  if (String(form.get("postal_address") || "").trim()) body.postal_address = String(form.get("postal_address")).trim();
  try {
    const created = await call("POST", "/api/v1/holders", body);
    root.reset();
    await openHolder(created, "création du titulaire au guichet");
    warnDuplicates(created.possible_duplicates || []);
  } catch (error) { showApiError(error, root); }
});

function warnDuplicates(duplicates) {
  const box = $("duplicate-warning");
  if (!duplicates.length) { show("duplicate-warning", false); return; }
  box.replaceChildren("Attention : titulaire probablement en double (mêmes nom, prénom et date de naissance) : ");
  for (const d of duplicates) {
    box.append(actionButton("ouvrir " + holderLabel(d) + " — n° " + d.id, async () => {
      try { await openHolder({ ...d, anonymous: false }, "vérification d'un doublon à la création"); } catch (error) { showError(error.message); }
    }));
  }
  show("duplicate-warning", true);
}

$("anonymous").addEventListener("click", async () => {
  showError("");
  try { await openHolder(await call("POST", "/api/v1/holders", { anonymous: true }), "création d'une carte anonyme"); } catch (error) { showError(error.message); }
});

// Open a holder's record; every lookup it makes is audited under ``reason``, this holder's own.
async function openHolder(holder, reason) {
  state.holder = holder;
  state.reason = reason;
  $("holder-name").textContent = holderLabel(holder);
  show("duplicate-warning", false);
  show("holder-panel", true); show("job-form", false); show("confirm-panel", false);
  show("block-panel", false); show("unblock-panel", false);
  show("holder-edit", !holder.anonymous);
  const edit = $("edit-form");
  for (const field of ["family_name", "given_name", "birth_date", "email", "phone", "postal_address"]) {
    edit.querySelector("[name=" + field + "]").value = holder[field] || "";
  }
  // Never show the previous holder's cards and jobs while this one's are being read.
  $("cards").replaceChildren(); $("jobs").replaceChildren();
  await refreshHolder();
}

async function refreshHolder() {
  const id = state.holder.id;
  const query = new URLSearchParams({ holder_id: id, reason: state.reason });
  const cards = await callAll("/api/v1/cards?" + query);
  if (!state.holder || state.holder.id !== id) return;  // logged out or another holder meanwhile
  $("cards").replaceChildren(...cards.map(cardItem));
  if (!cards.length) $("cards").replaceChildren(Object.assign(document.createElement("li"), { textContent: "Aucune carte" }));
  const jobs = await call("GET", API + "/jobs?" + query);
  if (!state.holder || state.holder.id !== id) return;
  $("jobs").replaceChildren(...jobs.map(jobItem));
  if (!jobs.length) $("jobs").replaceChildren(Object.assign(document.createElement("li"), { textContent: "Aucune demande" }));
}

$("edit-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const root = event.target;
  showError(""); clearFieldErrors(root);
  if (!checkBirthDate(root.querySelector("[name=birth_date]"))) return;
  const body = {};
  for (const [field, value] of new FormData(root)) {
    const text = String(value).trim();
    if (["family_name", "given_name"].includes(field)) body[field] = text;
    else body[field] = text || null;
  }
  try {
    const holder = await call("PATCH", "/api/v1/holders/" + state.holder.id, body);
    state.holder = holder;
    $("holder-name").textContent = holderLabel(holder);
    notice("Données du titulaire enregistrées");
  } catch (error) { showApiError(error, root); }
});

function balancesText(card) {
  const parts = Object.entries(card.balances || {}).map(([purse, value]) => (LABELS.purses[purse] || purse) + " " + euros(value));
  return parts.length ? "soldes : " + parts.join(", ") : "aucun solde connu";
}

function cardItem(card) {
  const item = document.createElement("li");
  const apps = card.applications.map((a) => APPS[a] || a).join(", ");
  item.textContent = "Carte n° " + card.serial + " — " + (LABELS.card_statuses[card.status] || card.status) + " — " + apps +
    " — " + balancesText(card) + " ";
  if (card.status === "active") {
    item.append(actionButton("Charger / modifier", () => openJobForm("update", card)));
    item.append(actionButton("Carte perdue ou volée : bloquer", () => openBlock(card)));
  } else if (card.status === "blocked") {
    item.append(actionButton("Remplacer par une carte vierge", () => openReplace(card)));
    if (state.me && state.me.role === "supervisor") item.append(actionButton("Débloquer", () => openUnblock(card)));
  }
  return item;
}

function jobItem(job) {
  const item = document.createElement("li");
  const when = new Date(job.created_at).toLocaleString("fr-FR");
  item.textContent = (KINDS[job.kind] || job.kind) + " n° " + job.id + " du " + when + " — " +
    (LABELS.job_statuses[job.status] || job.status) + (job.card_serial ? " — carte " + job.card_serial : "") + " — " + job.message + " ";
  if (job.receipt_url) item.append(actionButton("Réimprimer le reçu", () => reprint(job)));
  if (job.status === "failed") item.append(actionButton("Relancer", () => retry(job.id)));
  return item;
}

function actionButton(text, handler) {
  const button = document.createElement("button");
  button.type = "button"; button.className = "secondary"; button.textContent = text;
  button.addEventListener("click", handler);
  return button;
}

// -- block, unblock, replace -------------------------------------------------------------------
function openBlock(card) {
  state.card = card;
  $("block-serial").textContent = card.serial;
  show("job-form", false); show("confirm-panel", false); show("unblock-panel", false); show("block-panel", true);
}

$("block-cancel").addEventListener("click", () => show("block-panel", false));

$("block-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const root = event.target;
  showError(""); clearFieldErrors(root);
  const reason = String(new FormData(root).get("reason") || "").trim();
  if (reason.length < 3) { fieldError(root.querySelector("[name=reason]"), "motif obligatoire"); return; }
  try {
    await call("POST", "/api/v1/cards/" + state.card.serial + "/block", { reason });
    show("block-panel", false);
    notice("Carte " + state.card.serial + " bloquée : mise en opposition, envoyée aux valideurs à leur prochaine mise à jour");
    await refreshHolder();
  } catch (error) { showApiError(error, root); }
});

function openUnblock(card) {
  state.card = card;
  $("unblock-serial").textContent = card.serial;
  show("block-panel", false); show("unblock-panel", true);
}

$("unblock-cancel").addEventListener("click", () => show("unblock-panel", false));

$("unblock-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const root = event.target;
  showError(""); clearFieldErrors(root);
  const reason = String(new FormData(root).get("reason") || "").trim();
  if (reason.length < 3) { fieldError(root.querySelector("[name=reason]"), "motif obligatoire"); return; }
  try {
    await call("POST", "/api/v1/cards/" + state.card.serial + "/unblock", { reason });
    show("unblock-panel", false);
    notice("Carte " + state.card.serial + " débloquée");
    await refreshHolder();
  } catch (error) { showApiError(error, root); }
});

function openReplace(card) {
  showError("");
  confirmJob({ kind: "replace", card_serial: card.serial, reason: card.blocked_reason || "carte perdue ou volée (guichet)" },
    ["Remplacement de la carte " + card.serial + " par une carte vierge (soldes et contrats repris)"], 0);
}

// -- a job: form, check, confirm, follow -------------------------------------------------------
function schoolYear(today) {
  const year = today.getFullYear();
  return today.getMonth() >= 7 ? year + "-" + (year + 1) : (year - 1) + "-" + year;  // from August on: the coming year
}

function openJobForm(mode, card) {
  state.mode = mode; state.card = card || null;
  $("job-form").reset();
  clearFieldErrors($("job-form"));
  $("aid-year").value = schoolYear(new Date());
  $("job-title").textContent = mode === "issue" ? "Émettre une carte" : "Carte n° " + card.serial + " : chargements et applications";
  show("remove-apps", mode === "update");
  for (const box of document.querySelectorAll("input[name=app]")) {
    box.disabled = mode === "update" && card.applications.includes(box.value);
    box.checked = box.disabled;
  }
  show("block-panel", false); show("confirm-panel", false);
  show("job-form", true);
}

$("new-card").addEventListener("click", () => openJobForm("issue"));
$("job-cancel").addEventListener("click", () => show("job-form", false));

$("job-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const root = event.target;
  showError(""); clearFieldErrors(root);
  const checked = (name) => [...document.querySelectorAll("input[name=" + name + "]:checked:not(:disabled)")].map((b) => b.value);
  const wallet = parseEuros($("wallet").value);
  const aid = parseEuros($("aid-amount").value);
  let ok = true;
  const ambiguous = "montant ambigu : écrivez les euros, par exemple 1,50 ou 12";
  if (wallet === null) { fieldError($("wallet"), ambiguous); ok = false; }
  else if (wallet > 15000) { fieldError($("wallet"), "au plus 150,00 € sur le porte-monnaie"); ok = false; }
  if (aid === null) { fieldError($("aid-amount"), ambiguous); ok = false; }
  const purpose = $("aid-purpose").value;
  if (aid && !purpose) { fieldError($("aid-purpose"), "choisissez l'usage de l'aide"); ok = false; }
  if (purpose && !aid) { fieldError($("aid-amount"), "montant de l'aide obligatoire"); ok = false; }
  if (purpose && !/^\d{4}-\d{4}$/.test($("aid-year").value)) { fieldError($("aid-year"), "année scolaire : par exemple " + schoolYear(new Date())); ok = false; }
  const uai = $("uai").value.trim().toUpperCase();
  if (uai && !/^\d{7}[A-Z]$/.test(uai)) { fieldError($("uai"), "UAI : 7 chiffres et une lettre, par exemple 0801234G"); ok = false; }
  if (!$("desk").value) { showError("Aucun poste de guichet : la carte ne peut pas être écrite"); ok = false; }
  if (!ok) return;
  const body = {
    contracts: [...$("contracts").selectedOptions].map((o) => Number(o.value)),
    wallet_reload_cents: wallet,
  };
  if (purpose && aid > 0) body.school_aid = [{ purpose, amount_cents: aid, school_year: $("aid-year").value }];
  if (uai) body.student = { school_uai: uai };
  if (state.mode === "issue") {
    Object.assign(body, { kind: "issue", applications: checked("app") });
    body.holder_id = state.holder.id;
  } else {
    Object.assign(body, { kind: "update", card_serial: state.card.serial, add_applications: checked("app"), remove_applications: checked("remove") });
  }
  const lines = [];
  let total = 0;
  for (const code of body.contracts) {
    const product = state.products.find((p) => p.code === code);
    lines.push(product.name + " : " + euros(product.amount_cents));
    total += product.amount_cents;
  }
  if (wallet) { lines.push("Rechargement du porte-monnaie : " + euros(wallet)); total += wallet; }
  if (body.school_aid) lines.push("Aide Cursus " + LABELS.aid_purposes[purpose] + " (" + body.school_aid[0].school_year + ", payée par la région) : " + euros(aid));
  const apps = state.mode === "issue" ? body.applications : body.add_applications;
  if (apps.length) lines.unshift("Applications : " + apps.map((a) => APPS[a]).join(", "));
  if (body.remove_applications && body.remove_applications.length) lines.push("Retirées : " + body.remove_applications.map((a) => APPS[a]).join(", "));
  confirmJob(body, lines, total);
});

// Show what will be written and the total to collect; nothing is sent before « Confirmer ».
function confirmJob(body, lines, total) {
  state.pending = body;
  $("confirm-lines").replaceChildren(...lines.map((text) => Object.assign(document.createElement("li"), { textContent: text })));
  $("confirm-total").textContent = "Total à encaisser : " + euros(total);
  show("job-form", false); show("confirm-panel", true);
}

$("confirm-back").addEventListener("click", () => {
  show("confirm-panel", false);
  if (state.pending && state.pending.kind !== "replace") show("job-form", true);
  state.pending = null;
});

$("confirm-write").addEventListener("click", async () => {
  showError("");
  const body = state.pending;
  if (!body) return;
  try {
    await startJob(body);
    state.pending = null;
  } catch (error) {
    show("confirm-panel", false);
    if (body.kind !== "replace") show("job-form", true);
    showApiError(error, $("job-form"));
  }
});

async function startJob(body) {
  body.desk_terminal_id = $("desk").value;
  const job = await call("POST", API + "/jobs", body);
  show("confirm-panel", false);
  follow(job);
}

function follow(job) {
  state.job = job.id;
  show("progress-panel", true); show("job-retry", false);
  $("receipt").hidden = true;
  delete $("receipt").dataset.job;
  render(job);
  clearInterval(state.timer);
  state.timer = setInterval(() => poll(job.id), 500);
}

async function retry(id) {
  showError("");
  try { follow(await call("POST", API + "/jobs/" + id + "/retry")); } catch (error) { showError(error.message); }
}

$("job-retry").addEventListener("click", () => retry(state.job));

async function poll(id) {
  try {
    const job = await call("GET", API + "/jobs/" + id);
    render(job);
    if (job.status === "done" || job.status === "failed") {
      clearInterval(state.timer);
      if (state.holder) await refreshHolder();
    }
  } catch (error) { showError(error.message); clearInterval(state.timer); }
}

function render(job) {
  $("progress").max = Math.max(job.steps_total, 1);
  $("progress").value = job.status === "done" ? $("progress").max : job.steps_done;
  $("job-message").textContent = job.message;
  $("job-message").className = job.status;
  show("job-retry", job.status === "failed");
  if (job.receipt_url && $("receipt").dataset.job !== String(job.id)) loadReceipt(job);
}

// The receipt needs the agent's token: fetched, then offered as a local PDF link.
async function fetchReceipt(job) {
  const answer = await fetch(job.receipt_url, { headers: { Authorization: "Bearer " + token() } });
  if (!answer.ok) throw new Error("Reçu indisponible");
  const url = URL.createObjectURL(await answer.blob());
  state.urls.push(url);
  return url;
}

async function loadReceipt(job) {
  $("receipt").dataset.job = String(job.id);
  try {
    const link = $("receipt");
    link.href = await fetchReceipt(job);
    link.download = "recu-" + job.id + ".pdf";
    link.hidden = false;
  } catch (error) { showError(error.message); }
}

async function reprint(job) {
  try {
    const link = document.createElement("a");
    link.href = await fetchReceipt(job);
    link.download = "recu-" + job.id + ".pdf";
    document.body.append(link); link.click(); link.remove();
  } catch (error) { showError(error.message); }
}

if (token()) enter().catch(() => logout());
