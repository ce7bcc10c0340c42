// Guichet de la carte régionale : vanilla JS over the JSON API (no build step, no CDN).
"use strict";

const API = document.body.dataset.api;
const $ = (id) => document.getElementById(id);
const state = { holder: null, reason: "", mode: "issue", card: null, products: [], timer: null };
const APPS = { plum: "PLUM", wallet: "Ma région numérique", cursus: "Cursus", employment: "Mes droits pour l'emploi" };
const STATUS = { active: "active", blocked: "bloquée", replaced: "remplacée" };

function token() { return sessionStorage.getItem("regioncard.token"); }

function showError(message) {
  const box = $("error");
  box.textContent = message || "";
  box.hidden = !message;
}

async function call(method, path, body) {
  const headers = { Authorization: "Bearer " + token() };
  const init = { method, headers };
  if (body !== undefined) { headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
  const answer = await fetch(path, init);
  if (answer.status === 401) { logout(); throw new Error("Session expirée : reconnectez-vous"); }
  const data = answer.status === 204 ? null : await answer.json();
  if (!answer.ok) throw new Error((data && data.message_fr) || "Erreur " + answer.status);
  return data;
}

function euros(cents) { return (cents / 100).toFixed(2).replace(".", ",") + " €"; }

function show(id, visible) { $(id).hidden = !visible; }

function logout() {
  sessionStorage.removeItem("regioncard.token");
  show("login-screen", true); show("desk-screen", false); show("logout", false); show("who", false);
}

async function enter() {
  const me = await call("GET", "/api/v1/auth/me");
  $("who").textContent = "Agent : " + me.username;
  show("who", true); show("logout", true); show("login-screen", false); show("desk-screen", true);
  const desks = await call("GET", API + "/desks");
  $("desk").replaceChildren(...desks.map((d) => new Option(d, d)));
  state.products = (await call("GET", "/api/v1/products")).filter((p) => p.application === "plum");
  $("contracts").replaceChildren(...state.products.map(
    (p) => new Option(p.name + " — " + euros(p.amount_cents), String(p.code))));
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  showError("");
  const form = new FormData(event.target);
  const answer = await fetch("/api/v1/auth/token", { method: "POST", body: new URLSearchParams(form) });
  const data = await answer.json();
  if (!answer.ok) { showError(data.message_fr || "Identifiant ou mot de passe incorrect"); return; }
  sessionStorage.setItem("regioncard.token", data.access_token);
  try { await enter(); } catch (error) { showError(error.message); }
});

$("logout").addEventListener("click", logout);

function holderLabel(h) {
  return h.anonymous ? "Carte anonyme n° " + h.id : h.given_name + " " + h.family_name +
    (h.birth_date ? " (né·e le " + new Date(h.birth_date).toLocaleDateString("fr-FR") + ")" : "");
}

$("search-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  showError("");
  const form = new FormData(event.target);
  state.reason = form.get("reason");
  try {
    const found = await call("GET", "/api/v1/holders?" + new URLSearchParams(form));
    $("results").replaceChildren(...found.map((h) => {
      const item = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button"; button.className = "secondary"; button.textContent = holderLabel(h);
      button.addEventListener("click", () => openHolder(h));
      item.append(button);
      return item;
    }));
    if (!found.length) $("results").replaceChildren(Object.assign(document.createElement("li"), { textContent: "Aucun titulaire trouvé" }));
  } catch (error) { showError(error.message); }
});

$("holder-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  showError("");
  const form = new FormData(event.target);
  const body = { family_name: form.get("family_name"), given_name: form.get("given_name") };
  if (form.get("birth_date")) body.birth_date = form.get("birth_date");
  try { await openHolder(await call("POST", "/api/v1/holders", body), true); } catch (error) { showError(error.message); }
});

$("anonymous").addEventListener("click", async () => {
  showError("");
  try { await openHolder(await call("POST", "/api/v1/holders", { anonymous: true }), true); } catch (error) { showError(error.message); }
});

async function openHolder(holder, created) {
  state.holder = holder;
  $("holder-name").textContent = holderLabel(holder);
  show("holder-panel", true); show("job-form", false);
  if (!state.reason) state.reason = created ? "création au guichet" : "consultation au guichet";
  const cards = await call("GET", "/api/v1/cards?" + new URLSearchParams({ holder_id: holder.id, reason: state.reason }));
  $("cards").replaceChildren(...cards.map(cardItem));
  if (!cards.length) $("cards").replaceChildren(Object.assign(document.createElement("li"), { textContent: "Aucune carte" }));
}

function cardItem(card) {
  const item = document.createElement("li");
  const apps = card.applications.map((a) => APPS[a] || a).join(", ");
  item.textContent = "Carte n° " + card.serial + " — " + (STATUS[card.status] || card.status) + " — " + apps + " ";
  if (card.status === "active") {
    item.append(actionButton("Charger / modifier", () => openJobForm("update", card)));
    item.append(actionButton("Carte perdue : bloquer et remplacer", () => replaceCard(card)));
  } else if (card.status === "blocked") {
    item.append(actionButton("Remplacer", () => replaceCard(card)));
  }
  return item;
}

function actionButton(text, handler) {
  const button = document.createElement("button");
  button.type = "button"; button.className = "secondary"; button.textContent = text;
  button.addEventListener("click", handler);
  return button;
}

function openJobForm(mode, card) {
  state.mode = mode; state.card = card || null;
  $("job-form").reset();
  $("job-title").textContent = mode === "issue" ? "Émettre une carte" : "Carte n° " + card.serial + " : chargements et applications";
  $("job-submit").textContent = mode === "issue" ? "Émettre la carte" : "Écrire sur la carte";
  show("remove-apps", mode === "update");
  for (const box of document.querySelectorAll("input[name=app]")) {
    box.disabled = mode === "update" && card.applications.includes(box.value);
    box.checked = box.disabled;
  }
  show("job-form", true);
}

$("new-card").addEventListener("click", () => openJobForm("issue"));
$("job-cancel").addEventListener("click", () => show("job-form", false));

async function replaceCard(card) {
  showError("");
  try {
    await startJob({ kind: "replace", card_serial: card.serial, reason: "carte perdue ou volée (guichet)" });
  } catch (error) { showError(error.message); }
}

$("job-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  showError("");
  const checked = (name) => [...document.querySelectorAll("input[name=" + name + "]:checked:not(:disabled)")].map((b) => b.value);
  const body = {
    contracts: [...$("contracts").selectedOptions].map((o) => Number(o.value)),
    wallet_reload_cents: Math.round(Number($("wallet").value || 0) * 100),
  };
  const purpose = $("aid-purpose").value;
  const aid = Math.round(Number($("aid-amount").value || 0) * 100);
  if (purpose && aid > 0) body.school_aid = [{ purpose, amount_cents: aid, school_year: $("aid-year").value }];
  if ($("uai").value) body.student = { school_uai: $("uai").value.toUpperCase() };
  if (state.mode === "issue") {
    Object.assign(body, { kind: "issue", applications: checked("app") });
    body.holder_id = state.holder.id;
  } else {
    Object.assign(body, { kind: "update", card_serial: state.card.serial, add_applications: checked("app"), remove_applications: checked("remove") });
  }
  try { await startJob(body); } catch (error) { showError(error.message); }
});

async function startJob(body) {
  body.desk_terminal_id = $("desk").value;
  const job = await call("POST", API + "/jobs", body);
  show("job-form", false); show("progress-panel", true);
  $("receipt").hidden = true;
  delete $("receipt").dataset.job;
  render(job);
  clearInterval(state.timer);
  state.timer = setInterval(() => poll(job.id), 500);
}

async function poll(id) {
  try {
    const job = await call("GET", API + "/jobs/" + id);
    render(job);
    if (job.status === "done" || job.status === "failed") {
      clearInterval(state.timer);
      if (state.holder) await openHolder(state.holder);
    }
  } catch (error) { showError(error.message); clearInterval(state.timer); }
}

function render(job) {
  $("progress").max = Math.max(job.steps_total, 1);
  $("progress").value = job.status === "done" ? $("progress").max : job.steps_done;
  $("job-message").textContent = job.message;
  $("job-message").className = job.status;
  if (job.receipt_url && $("receipt").dataset.job !== String(job.id)) loadReceipt(job);
}

// The receipt needs the agent's token: fetched, then offered as a local PDF link.
async function loadReceipt(job) {
  $("receipt").dataset.job = String(job.id);
  const answer = await fetch(job.receipt_url, { headers: { Authorization: "Bearer " + token() } });
  if (!answer.ok) { showError("Reçu indisponible"); return; }
  const link = $("receipt");
  link.href = URL.createObjectURL(await answer.blob());
  link.download = "recu-" + job.id + ".pdf";
  link.hidden = false;
}

if (token()) enter().catch(() => logout());
