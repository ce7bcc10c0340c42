// The holder's page: signs in, then shows and acts through /api/v1/holder (no framework, no CDN).
"use strict";

const API = "/api/v1/holder";
const TOKEN_KEY = "regioncard.holder.token";
let overview = null;
let subjectId = null; // a ward's holder id, or null for one's own page

const $ = (id) => document.getElementById(id);

function el(tag, text, attrs) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = text;
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  return node;
}

function euros(cents) {
  return (cents / 100).toLocaleString("fr-FR", { style: "currency", currency: "EUR" });
}

function when(iso) {
  return new Date(iso).toLocaleString("fr-FR", {
    timeZone: "Europe/Paris", day: "2-digit", month: "2-digit", year: "numeric",
    hour: "2-digit", minute: "2-digit",
  });
}

function day(iso, withYear) {
  const options = { weekday: "long", day: "numeric", month: "long" };
  if (withYear) options.year = "numeric";
  return new Date(iso + "T12:00:00Z").toLocaleDateString("fr-FR", options);
}

function say(text, isError, where) {
  const box = where || $("message");
  box.textContent = text || "";
  box.classList.toggle("error", Boolean(isError));
}

async function call(method, path, body) {
  const headers = { Accept: "application/json" };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = "Bearer " + token;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let url = API + path;
  if (subjectId !== null && !path.startsWith("/login") && !path.startsWith("/activate")) {
    url += (url.includes("?") ? "&" : "?") + "holder_id=" + subjectId;
  }
  const answer = await fetch(url, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try { data = await answer.json(); } catch (e) { data = null; }
  if (!answer.ok) {
    if (answer.status === 401 && token) signOut();
    const error = new Error((data && data.message_fr) || "erreur " + answer.status);
    error.status = answer.status;
    throw error;
  }
  return data;
}

function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  overview = null;
  subjectId = null;
  $("app").hidden = true;
  $("session").hidden = true;
  $("signin").hidden = false;
}

async function signedIn(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
  await refresh();
}

async function refresh() {
  try {
    overview = await call("GET", "/me");
  } catch (error) {
    say(error.message, true);
    return;
  }
  $("signin").hidden = true;
  $("app").hidden = false;
  $("session").hidden = false;
  render();
}

function render() {
  const o = overview;
  $("who").textContent = "Connecté : " + o.account.name;
  const subject = $("subject");
  subject.replaceChildren();
  $("subject-label").hidden = o.account.wards.length === 0;
  subject.append(el("option", o.account.name + " (moi)", { value: "" }));
  for (const ward of o.account.wards) {
    const option = el("option", ward.name, { value: String(ward.holder_id) });
    if (subjectId === ward.holder_id) option.selected = true;
    subject.append(option);
  }
  renderCards(o);
  renderBuy(o);
  renderAid(o);
  renderRights(o);
  renderConsultations(o);
  renderMenu(o);
  renderHistory(o);
}

function renderCards(o) {
  const box = $("cards");
  box.replaceChildren();
  if (o.cards.length === 0) box.append(el("p", "Aucune carte"));
  for (const card of o.cards) {
    const article = el("article", null, { class: "card", "data-serial": card.serial });
    const title = el("h3", "Carte n° " + card.serial + " — ");
    title.append(el("span", card.status_label, { class: "status-" + card.status }));
    article.append(title);
    article.append(el("p", "Applications : " + card.applications.map((a) => a.label).join(", ")));
    if (card.balances.length > 0) {
      const list = el("ul", null, { class: "balances" });
      for (const b of card.balances) {
        const value = b.unit === "eurocent" ? euros(b.value) : b.value + " voyage(s)";
        list.append(el("li", b.label + " : " + value));
      }
      article.append(list);
      article.append(el("p", card.balances_at
        ? "Soldes au dernier passage du " + when(card.balances_at)
        : "Soldes connus à l'émission de la carte", { class: "seen" }));
    } else {
      article.append(el("p", "Aucun solde connu : la carte n'est pas encore passée à une borne.",
        { class: "seen" }));
    }
    const pending = el("div", null, { class: "pending" });
    if (card.pending.length > 0) {
      pending.append(el("h4", "En attente du prochain passage"));
      const list = el("ul");
      for (const a of card.pending) {
        let text = a.product_name ? a.label + " : " + a.product_name : a.label;
        if (a.amount_cents !== null) text += " (" + euros(a.amount_cents) + ")";
        const verb = a.kind === "load_contract" || a.kind === "sv_reload" ? "acheté" : "accordé";
        list.append(el("li", text + " — " + verb + " le " + when(a.created_at)));
      }
      pending.append(list);
    }
    article.append(pending);
    if (card.status === "active") {
      const button = el("button", "Carte perdue ou volée : bloquer", { type: "button", class: "danger" });
      button.addEventListener("click", () => askBlock(card.serial));
      article.append(button);
    } else if (card.blocked_at) {
      article.append(el("p", "Bloquée le " + when(card.blocked_at)));
    }
    box.append(article);
  }
}

function askBlock(serial) {
  $("block-text").textContent = "Carte n° " + serial;
  const dialog = $("block-dialog");
  dialog.dataset.serial = serial;
  dialog.returnValue = "";
  dialog.showModal();
}

async function onDialogClose() {
  const dialog = $("block-dialog");
  if (dialog.returnValue !== "confirm") return;
  try {
    const done = await call("POST", "/cards/" + dialog.dataset.serial + "/block", { confirm: true });
    say(done.message, false);
    await refresh();
  } catch (error) {
    say(error.message, true);
  }
}

function renderBuy(o) {
  const cards = $("buy-card");
  cards.replaceChildren();
  for (const card of o.cards.filter((c) => c.status === "active")) {
    cards.append(el("option", "Carte n° " + card.serial, { value: card.serial }));
  }
  const products = $("buy-product");
  products.replaceChildren();
  for (const p of o.catalogue) {
    const label = p.application === "wallet" ? p.name + " (montant au choix)" : p.name + " — " + euros(p.amount_cents);
    products.append(el("option", label, { value: String(p.code), "data-application": p.application }));
  }
  $("buy-section").hidden = cards.options.length === 0 || products.options.length === 0;
  onProductChange();
}

function onProductChange() {
  const option = $("buy-product").selectedOptions[0];
  $("amount-label").hidden = !option || option.dataset.application !== "wallet";
}

async function onBuy(event) {
  event.preventDefault();
  const form = event.target;
  const option = $("buy-product").selectedOptions[0];
  const body = {
    card_serial: form.card.value,
    product_code: Number(form.product.value),
    payment_means: form.means.value,
  };
  if (option && option.dataset.application === "wallet") {
    const amount = Number(String(form.amount.value).replace(",", ".").replace("€", "").trim());
    if (!Number.isFinite(amount) || amount <= 0) {
      say("Montant invalide : écrivez par exemple 10,00", true, $("buy-message"));
      return;
    }
    body.amount_cents = Math.round(amount * 100);
  }
  try {
    const done = await call("POST", "/purchases", body);
    say(done.message + " Référence du paiement : " + done.payment_reference, false, $("buy-message"));
    await refresh();
  } catch (error) {
    say(error.message, true, $("buy-message"));
  }
}

function table(headers, rows) {
  const t = el("table");
  const head = el("tr");
  for (const h of headers) head.append(el("th", h));
  t.append(head);
  for (const row of rows) {
    const tr = el("tr");
    for (const cell of row) tr.append(el("td", cell));
    t.append(tr);
  }
  return t;
}

function renderAid(o) {
  const box = $("aid");
  box.replaceChildren();
  if (o.aid.length === 0) { box.append(el("p", "Aucune aide Cursus")); return; }
  box.append(table(["Aide", "Accordée", "Reste sur la carte", "À écrire au prochain passage"],
    o.aid.map((a) => [
      a.label, euros(a.granted_cents),
      a.left_cents === null ? "pas encore lue sur la carte" : euros(a.left_cents),
      euros(a.pending_cents),
    ])));
}

function renderRights(o) {
  const box = $("rights");
  box.replaceChildren();
  if (o.rights.length === 0) { box.append(el("p", "Aucun droit enregistré")); return; }
  box.append(table(["Partenaire", "Droit", "Validité", "Montant ou heures", "État"],
    o.rights.map((r) => [
      r.partner_label, r.right_label, "du " + day(r.valid_from, true) + " au " + day(r.valid_to, true),
      r.amount_cents !== null ? euros(r.amount_cents) : (r.hours !== null ? r.hours + " h" : "—"),
      r.status === "granted" ? "accordé" : r.status,
    ])));
}

function renderConsultations(o) {
  const box = $("consultations");
  box.replaceChildren();
  if (o.consultations.length === 0) { box.append(el("p", "Personne n'a consulté vos données")); return; }
  box.append(table(["Date", "Qui", "Quoi", "Motif"],
    o.consultations.map((c) => [when(c.at), c.who, c.what, c.reason])));
}

function renderMenu(o) {
  const box = $("menu");
  box.replaceChildren();
  if (!o.menu) {
    box.append(el("p", o.school_uai ? "Menu non publié par l'établissement"
      : "Pas d'établissement scolaire enregistré sur la carte"));
    return;
  }
  box.append(el("p", o.menu.school_name));
  for (const d of o.menu.days) {
    const column = el("div", null, { class: "menu-day" });
    column.append(el("h4", day(d.date)));
    if (d.services.length === 0) column.append(el("p", "Pas de service"));
    for (const s of d.services) {
      if (s.service !== "lunch" && s.service !== "dinner") continue;
      column.append(el("strong", s.label));
      const list = el("ul");
      for (const dish of s.dishes) {
        const item = el("li", dish.name + (dish.marks.length ? " (" + dish.marks.join(", ") + ")" : ""));
        if (dish.allergens.length) item.append(el("div", "allergènes : " + dish.allergens.join(", "), { class: "allergens" }));
        list.append(item);
      }
      column.append(list);
    }
    box.append(column);
  }
}

function renderHistory(o) {
  $("keep-history").checked = o.trip_history.keep;
  const box = $("trips");
  box.replaceChildren();
  if (!o.trip_history.keep) return;
  if (o.trip_history.trips.length === 0) {
    box.append(el("p", "Historique conservé depuis le " + when(o.trip_history.since) + " : aucun trajet pour l'instant."));
    return;
  }
  box.append(table(["Date", "Lieu", "Résultat"], o.trip_history.trips.map((t) => [
    when(t.occurred_at),
    t.station_id !== null ? "station " + t.station_id : (t.school_uai ? "cantine " + t.school_uai : "—"),
    t.outcome === "COMMITTED" ? "validé" : t.outcome,
  ])));
}

async function onKeepHistory(event) {
  const keep = event.target.checked;
  if (!keep && !window.confirm("Effacer votre historique de trajets conservé ?")) {
    event.target.checked = true;
    return;
  }
  try {
    await call("PUT", "/trip-history", { keep });
    say(keep ? "Votre historique de trajets sera conservé." : "Votre historique de trajets est effacé.", false);
    await refresh();
  } catch (error) {
    say(error.message, true);
  }
}

async function onExport() {
  try {
    const data = await call("GET", "/export");
    const blob = new Blob([JSON.stringify(data, null, 2)], { type: "application/json" });
    const link = el("a", null, { href: URL.createObjectURL(blob), download: "mes-donnees-carte.json" });
    document.body.append(link);
    link.click();
    link.remove();
  } catch (error) {
    say(error.message, true);
  }
}

async function onLogin(event) {
  event.preventDefault();
  const form = event.target;
  try {
    const token = await call("POST", "/login", { login: form.login.value, password: form.password.value });
    say("", false);
    form.reset();
    await signedIn(token.access_token);
  } catch (error) {
    say(error.message, true);
  }
}

async function onActivate(event) {
  event.preventDefault();
  const form = event.target;
  try {
    const token = await call("POST", "/activate", {
      code: form.code.value, login: form.login.value, password: form.password.value,
    });
    say("Votre espace est activé.", false);
    form.reset();
    await signedIn(token.access_token);
  } catch (error) {
    say(error.message, true);
  }
}

async function start() {
  $("login-form").addEventListener("submit", onLogin);
  $("activate-form").addEventListener("submit", onActivate);
  $("logout").addEventListener("click", () => { signOut(); say("Vous êtes déconnecté.", false); });
  $("block-dialog").addEventListener("close", onDialogClose);
  $("buy-form").addEventListener("submit", onBuy);
  $("buy-product").addEventListener("change", onProductChange);
  $("keep-history").addEventListener("change", onKeepHistory);
  $("export").addEventListener("click", onExport);
  $("subject").addEventListener("change", async (event) => {
    subjectId = event.target.value ? Number(event.target.value) : null;
    await refresh();
  });
  const fragment = new URLSearchParams(window.location.hash.slice(1));
  history.replaceState(null, "", window.location.pathname);
  if (fragment.get("erreur")) say(fragment.get("erreur"), true);
  try {
    const config = await call("GET", "/config");
    if (config.oidc_enabled) {
      $("oidc-link").textContent = config.oidc_label;
      $("oidc").hidden = false;
    }
  } catch (error) {
    say(error.message, true);
  }
  if (fragment.get("jeton")) {
    await signedIn(fragment.get("jeton"));
  } else if (sessionStorage.getItem(TOKEN_KEY)) {
    await refresh();
  }
}

document.addEventListener("DOMContentLoaded", start);
