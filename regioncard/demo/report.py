"""The demo's report: ``summary.json``, PNG plots (matplotlib, Agg), ``index.html`` and the
summary printed in the terminal. Every figure comes from the run (the day's statistics and the
backend's own reports); the ledger line comes from the backend's ledger check."""

from __future__ import annotations

import html
import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from backend.labels import account_fr, anomaly_kind_fr
from regioncard.demo.runner import DemoResult
from regioncard.demo.world import SCHOOLS, TERMINALS, HolderKind
from terminal.fares.reasons import format_euros as euros

BALANCED = "Le grand livre est équilibré au centime près."
UNBALANCED = "Le grand livre n'est PAS équilibré : "
REASON_LABELS = {
    "ok": "Bon voyage",
    "transfer": "Correspondance",
    "school_transport": "Transport scolaire gratuit",
    "bike_shelter_open": "Abri vélo : accès autorisé",
    "card_blocked": "Carte bloquée",
    "already_validated": "Déjà validé",
    "insufficient_balance": "Solde insuffisant",
    "no_valid_contract": "Aucun titre valide",
    "bike_shelter_refused": "Abri vélo : accès refusé",
    "served": "Bon appétit",
    "already_served": "Repas déjà pris",
}
PATHS = {
    "issuance": (
        "Guichet : demandes de guichet (POST /api/v1/desk/jobs, les appels de la page desk.js "
        "avec le jeton de l'agent) traitées par le poste de guichet (terminal.desk.DeskStation, "
        "GET /api/v1/desk/jobs/next) : carte vierge posée sur le lecteur du guichet, plan du "
        "backend écrit étape par étape, clés de carte chiffrées chargées dans le SAM du guichet "
        "(Load Card Key), via pcscd/vpcd (multiplexeur de cartes derrière un lecteur)"
    ),
    "taps": (
        "Valideurs, cars, abri vélo, cantines : GateValidator / CanteenTill réels, chaque APDU "
        "via pyscard -> pcscd -> vpcd ; l'arrivée d'une carte dans le champ est simulée en "
        "changeant la puce derrière le lecteur (pas d'événement d'insertion pcscd)"
    ),
    "uploads": (
        "Journal de chaque terminal (guichet compris : rechargements, aides, contrats) -> "
        "UploadQueue -> HTTP POST /api/v1/uploads (urllib)"
    ),
    "backend": (
        "Backend FastAPI dans ce processus (uvicorn, 127.0.0.1), SQLite, jeton SoftHSM2 ; "
        "boucle de validation, rapports, clôture et contrôle du grand livre par l'API"
    ),
}


def build_summary(result: DemoResult) -> dict[str, Any]:
    """The counts of ``summary.json``."""
    stats = result.stats
    issued = Counter(h.kind.value for h in result.holders)
    refused = Counter(t["reason"] for t in stats.taps if not t["accepted"])
    accepted = Counter(t["reason"] for t in stats.taps if t["accepted"])
    meals_served = [m for m in stats.meals if m["served"]]
    backend = result.backend
    schools = backend.get("schools", {})
    anomalies = Counter(a["kind"] for a in backend.get("anomalies", []))
    resolved = Counter(a["kind"] for a in backend.get("anomalies", []) if a.get("resolved"))
    ledger = backend.get("ledger", {})
    balanced = bool(ledger.get("balanced"))
    taps_backend: Counter[str] = Counter()
    for report in backend.get("terminals", {}).values():
        for status, n in report.get("taps_by_status", {}).items():
            taps_backend[status] += n
    # What each payer settles at the close of the day (clearing), from the backend's answer.
    by_funder: Counter[str] = Counter()
    for line in backend.get("clearing", {}).get("settlements", []):
        by_funder[line["payer"]] += int(line["amount"])
    blocked = set(stats.blocked)
    return {
        "format": "regioncard.demo-summary/1",
        "day": "2026-11-27",
        "seed": result.options.seed,
        "holders": len(result.holders),
        "cards_issued": {
            "total": sum(issued.values()),
            "by_kind": dict(issued),
            "through_desk_jobs": result.desk_jobs.get("done", 0),
        },
        "desk_jobs": result.desk_jobs,
        "desk_ledger": backend.get("desk_ledger", {}),
        "taps": {
            "total": len(stats.taps),
            "accepted": sum(accepted.values()),
            "accepted_by_reason": dict(accepted),
            "refused": sum(refused.values()),
            "refused_by_reason": dict(refused),
            "by_terminal": dict(Counter(t["terminal"] for t in stats.taps)),
        },
        "meals": {
            "served": len(meals_served),
            "refused": len(stats.meals) - len(meals_served),
            "by_school": dict(Counter(m["school"] for m in meals_served)),
            "aid_cents": sum(m["aid"] for m in meals_served),
            "wallet_cents": sum(m["wallet"] for m in meals_served),
            "refused_by_reason": dict(Counter(m["reason"] for m in stats.meals if not m["served"])),
        },
        "amounts_by_funder": dict(by_funder),
        "canteen_by_funder": schools.get("by_funder", {}),
        "amounts_by_school": schools.get("schools", {}),
        "operators": backend.get("operators", {}).get("operators", {}),
        "sales_cents": result.sales,
        "blocked_cards": {
            "blocked": len(blocked),
            "deny_list_version": stats.deny_list_version,
            "refused_at_gate_after_push": len(set(stats.refused_blocked)),
            "all_refused": blocked <= set(stats.refused_blocked) and bool(blocked),
        },
        "anomalies": {
            "total": sum(anomalies.values()),
            "by_kind": dict(anomalies),
            "open": sum(anomalies.values()) - sum(resolved.values()),
            "by_kind_fr": [
                {
                    "kind": kind,
                    "label": anomaly_kind_fr(kind),
                    "open": n - resolved[kind],
                    "resolved": resolved[kind],
                }
                for kind, n in anomalies.items()
            ],
        },
        "accounts_fr": {
            account: account_fr(account)
            for account in list(by_funder) + list(schools.get("by_funder", {}))
        },
        "transit_sessions": backend.get("transit_sessions", {}),
        "pass_shares": backend.get("clearing", {}).get("pass_shares", {}),
        "uploads": {
            "batches": sum(u["batches"] for u in stats.uploads.values()),
            "records": sum(u["records"] for u in stats.uploads.values()),
            "not_uploaded": sum(u["not_uploaded"] for u in stats.uploads.values()),
            "by_terminal": stats.uploads,
            "backend_taps_by_status": dict(taps_backend),
            "pending_batches_after_loop": backend.get("pending_batches_after_loop"),
        },
        "offline_terminal": stats.offline,
        "apdus_through_pcscd": result.apdus,
        "timings_s": result.timings,
        "paths": PATHS,
        "ledger": {
            "balanced": balanced,
            "message": BALANCED if balanced else UNBALANCED + str(ledger.get("error", "")),
            "entries": ledger.get("entries"),
            "lines": ledger.get("lines"),
            "total_cents": ledger.get("total"),
        },
    }


def explanations(summary: dict[str, Any]) -> list[str]:
    """One line for every total that does not obviously add up with another one."""
    lines = []
    taps = summary["taps"]
    total, refused = taps["total"], taps["refused"]
    bike = taps["accepted_by_reason"].get("bike_shelter_open", 0)
    billed = sum(int(v["taps"]) for v in summary["operators"].values())
    sessions = summary.get("transit_sessions", {})
    sv = sum(n for k, n in sessions.items() if k.startswith("sv_debit:"))
    not_charged = sum(n for k, n in sessions.items() if k.endswith(":not_charged"))
    transit = total - refused - bike
    if transit + sv - not_charged == billed:
        lines.append(
            f"{total} passages aux valideurs contre {billed} facturés aux exploitants : "
            f"{total} − {refused} refusés (rien d'écrit) − {bike} à l'abri vélo (sans "
            f"exploitant) = {transit} passages de transport, + {sv} débits du porte-monnaie "
            f"(enregistrés en plus du passage) − {not_charged} sessions reçues mais non "
            f"facturées = {billed}."
        )
    else:
        lines.append(
            f"{total} passages aux valideurs contre {billed} facturés aux exploitants : "
            f"{refused} refusés et {bike} à l'abri vélo ne sont pas facturés ; l'écart restant "
            f"({transit - billed}) vient des sessions reçues par le backend ({sessions})."
        )
    plum = summary["amounts_by_funder"].get("region:plum")
    if plum is not None:
        revenue = sum(int(v["revenue"]) for v in summary["operators"].values())
        shares = sum(int(v) for v in summary.get("pass_shares", {}).values())
        label = account_fr("region:plum")
        if revenue + shares == plum:
            lines.append(
                f"{label} (region:plum) {euros(plum)} contre {euros(revenue)} de recettes des "
                f"exploitants : la région leur reverse aussi {euros(shares)} d'abonnements PLUM "
                f"vendus, répartis au prorata des validations d'abonnés "
                f"({euros(revenue)} + {euros(shares)} = {euros(plum)})."
            )
        else:
            lines.append(
                f"{label} (region:plum) {euros(plum)} : {euros(revenue)} de recettes des "
                f"exploitants et {euros(shares)} d'abonnements répartis ; "
                f"écart {euros(plum - revenue - shares)}."
            )
    blocked = summary["blocked_cards"]
    at_gate = taps["refused_by_reason"].get("card_blocked", 0)
    if at_gate != blocked["refused_at_gate_after_push"]:
        lines.append(
            f"{at_gate} refus « Carte bloquée » pour {blocked['blocked']} cartes bloquées : "
            f"les {blocked['refused_at_gate_after_push']} cartes perdues ont été présentées "
            f"{at_gate} fois en tout après la diffusion de la liste d'opposition."
        )
    meals = summary["meals"]
    if meals["refused"]:
        reasons = ", ".join(
            f"{REASON_LABELS.get(r, r)} {n}" for r, n in meals["refused_by_reason"].items()
        )
        lines.append(
            f"{meals['refused']} refus en cantine ({reasons}), comptés à part des "
            f"{taps['refused']} refus aux valideurs."
        )
    anomalies = summary["anomalies"]
    if anomalies["total"]:
        lines.append(
            f"{anomalies['total']} anomalies détectées, {anomalies['total'] - anomalies['open']} "
            f"résolues d'elles-mêmes (transaction remontée ensuite), {anomalies['open']} "
            "ouvertes."
        )
    return lines


def make_plots(result: DemoResult, out: Path) -> dict[str, str]:
    """The four PNGs; returns ``{name: file name}``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files: dict[str, str] = {}
    labels = {t.terminal_id: t.label.split(" (")[0] for t in TERMINALS}

    # Taps per hour per station
    per: dict[str, Counter[int]] = defaultdict(Counter)
    for tap in result.stats.taps:
        per[tap["terminal"]][tap["hour"]] += 1
    hours = list(range(6, 22))
    fig, ax = plt.subplots(figsize=(10, 5))
    bottom = [0] * len(hours)
    for terminal, counts in sorted(per.items()):
        values = [counts.get(h, 0) for h in hours]
        ax.bar(hours, values, bottom=bottom, label=labels.get(terminal, terminal))
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax.set_xlabel("heure (Europe/Paris)")
    ax.set_ylabel("passages")
    ax.set_title("Passages par heure et par point de validation — 27/11/2026")
    ax.set_ylim(0, max(max(bottom), 1) * 1.15)  # headroom: the rush-hour bar is never clipped
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the bars
    fig.tight_layout()
    files["taps"] = _save(fig, out, "passages-par-heure.png")

    # Meals per school and funder
    meals: dict[str, dict[str, int]] = defaultdict(lambda: {"aid": 0, "wallet": 0})
    for meal in result.stats.meals:
        if meal["served"]:
            meals[meal["school"]]["aid"] += meal["aid"]
            meals[meal["school"]]["wallet"] += meal["wallet"]
    schools = sorted(meals)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    names = [SCHOOLS.get(s, s) for s in schools]
    aid = [meals[s]["aid"] / 100 for s in schools]
    wallet = [meals[s]["wallet"] / 100 for s in schools]
    ax.bar(names, aid, label="Région (aide cantine)")
    ax.bar(names, wallet, bottom=aid, label="Porte-monnaie")
    served = Counter(m["school"] for m in result.stats.meals if m["served"])
    for i, school in enumerate(schools):
        ax.annotate(f"{served[school]} repas", (i, aid[i] + wallet[i]), ha="center", va="bottom")
    ax.set_ylabel("euros")
    ax.set_title("Repas par établissement et par financeur")
    ax.set_ylim(0, max([a + w for a, w in zip(aid, wallet, strict=True)] or [1]) * 1.2)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the bars
    files["meals"] = _save(fig, out, "repas-par-ecole.png")

    # Purse balances distribution
    fig, ax = plt.subplots(figsize=(8, 4.5))
    wallets = [p["wallet"] / 100 for p in result.purse_balances]
    aids = [p["canteen_aid"] / 100 for p in result.purse_balances if p["kind"] == "eleve"]
    ax.hist(
        [wallets, aids], bins=12, label=["porte-monnaie (toutes cartes)", "aide cantine (élèves)"]
    )
    ax.set_xlabel("solde en fin de journée (euros)")
    ax.set_ylabel("cartes")
    ax.set_title("Soldes des cartes le soir")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    files["balances"] = _save(fig, out, "soldes.png")

    # Anomalies and refusals by kind
    found = result.backend.get("anomalies", [])
    kinds_seen = sorted({a["kind"] for a in found})
    still_open = Counter(a["kind"] for a in found if not a.get("resolved"))
    solved = Counter(a["kind"] for a in found if a.get("resolved"))
    refused = Counter(
        REASON_LABELS.get(t["reason"], t["reason"]) for t in result.stats.taps if not t["accepted"]
    )
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    if kinds_seen:
        names = [anomaly_kind_fr(k) for k in kinds_seen]
        done = [solved[k] for k in kinds_seen]
        left.barh(names, done, color="tab:gray", label="résolues")
        left.barh(
            names, [still_open[k] for k in kinds_seen], left=done, color="tab:red", label="ouvertes"
        )
        left.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2)
    else:
        left.text(0.5, 0.5, "aucune anomalie", ha="center", va="center")
    left.set_title("Anomalies du backend par type")
    if refused:
        right.barh(list(refused), list(refused.values()), color="tab:orange")
    right.set_title("Refus aux valideurs par motif")
    fig.tight_layout()
    files["anomalies"] = _save(fig, out, "anomalies.png")
    plt.close("all")
    return files


def _save(fig: Any, out: Path, name: str) -> str:
    fig.tight_layout()
    fig.savefig(out / name, dpi=90)
    return name


class _Html(str):
    """Markup already escaped (a French label with its code in small print)."""


def _label(label: str, code: str) -> _Html:
    small = f" <small class='code'>{html.escape(code)}</small>" if code != label else ""
    return _Html(html.escape(label) + small)


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(f"<td>{c if isinstance(c, _Html) else html.escape(str(c))}</td>" for c in row)
        + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def write_html(
    result: DemoResult, summary: dict[str, Any], plots: dict[str, str], out: Path
) -> None:
    """``index.html``: French, self-contained apart from the PNGs next to it."""
    kinds = {k.value: k.label for k in HolderKind}
    cards = summary["cards_issued"]["by_kind"]
    desk = summary["desk_jobs"]
    taps = summary["taps"]
    meals = summary["meals"]
    ledger = summary["ledger"]
    offline = summary["offline_terminal"]
    sections = [
        f"<h1>Une journée dans la région — {summary['day']}</h1>",
        f"<p class='{'ok' if ledger['balanced'] else 'ko'}'><b>{html.escape(ledger['message'])}</b>"
        f" ({ledger['entries']} écritures, {ledger['lines']} lignes)</p>",
        "<h2>Ce qui ne s'additionne pas d'un coup d'œil</h2>",
        "<ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in summary["explanations"]) + "</ul>",
        "<h2>Cartes émises au guichet</h2>",
        f"<p>{desk.get('done', 0)} demandes de guichet traitées par le poste de guichet "
        f"(DeskStation) sur {desk.get('created', 0)} créées par l'agent, "
        f"{desk.get('steps_written', 0)} étapes écrites (une session sécurisée et une clé "
        "chiffrée chargée dans le SAM du guichet chacune).</p>",
        _table(["Porteurs", "Cartes"], [[kinds.get(k, k), n] for k, n in cards.items()]),
        "<h2>Passages aux valideurs</h2>",
        f"<p>{taps['total']} passages : {taps['accepted']} acceptés, "
        f"{taps['refused']} refusés.</p>",
        _table(
            ["Motif", "Acceptés"],
            [[REASON_LABELS.get(r, r), n] for r, n in taps["accepted_by_reason"].items()],
        ),
        _table(
            ["Motif de refus", "Nombre"],
            [[REASON_LABELS.get(r, r), n] for r, n in taps["refused_by_reason"].items()],
        ),
        f"<img src='{plots['taps']}' alt='passages par heure'>",
        "<h2>Cantines</h2>",
        f"<p>{meals['served']} repas servis ({euros(meals['aid_cents'])} d'aide cantine, "
        f"{euros(meals['wallet_cents'])} de porte-monnaie), {meals['refused']} refus.</p>",
        _table(
            ["Établissement", "Financeur", "Montant"],
            [
                [
                    SCHOOLS.get(uai, uai),
                    _label(summary["accounts_fr"].get(payer, payer), payer),
                    euros(amount),
                ]
                for uai, parts in summary["amounts_by_school"].items()
                for payer, amount in parts.items()
            ],
        ),
        f"<img src='{plots['meals']}' alt='repas par école'>",
        "<h2>Montants par financeur et par exploitant (rapprochement du backend)</h2>",
        _table(
            ["Payeur", "Montant"],
            [
                [_label(summary["accounts_fr"].get(k, k), k), euros(v)]
                for k, v in summary["amounts_by_funder"].items()
            ],
        ),
        _table(
            ["Exploitant", "Passages facturés", "Validations d'abonnés", "Recettes"],
            [
                [op, v["taps"], v["pass_validations"], euros(v["revenue"])]
                for op, v in summary["operators"].items()
            ],
        ),
        f"<img src='{plots['balances']}' alt='soldes'>",
        "<h2>Cartes perdues et liste d'opposition</h2>",
        f"<p>{summary['blocked_cards']['blocked']} cartes bloquées au guichet à midi ; liste "
        f"d'opposition signée version {summary['blocked_cards']['deny_list_version']} poussée aux "
        f"valideurs à 13:00 ; {summary['blocked_cards']['refused_at_gate_after_push']} refusées "
        "« Carte bloquée » le soir.</p>",
        "<h2>Terminal hors ligne</h2>",
        f"<p>{html.escape(str(offline.get('label')))} ({offline.get('terminal')}) hors réseau de "
        f"{offline.get('from')} à {offline.get('until')} : {offline.get('taps_while_offline')} "
        f"passages pendant la coupure, envois échoués à "
        f"{', '.join(a['at'] for a in offline.get('failed_attempts', []))}, rattrapage à "
        f"{offline.get('caught_up_at')} ({offline.get('caught_up_records')} enregistrements). "
        f"Tout envoyé : {'oui' if offline.get('all_uploaded') else 'non'}.</p>",
        "<h2>Anomalies</h2>",
        _table(
            ["Type", "Ouvertes", "Résolues"],
            [
                [_label(a["label"], a["kind"]), a["open"], a["resolved"]]
                for a in summary["anomalies"]["by_kind_fr"]
            ],
        ),
        f"<img src='{plots['anomalies']}' alt='anomalies'>",
        "<h2>Envois</h2>",
        _table(
            ["Terminal", "Lots", "Enregistrements", "Non envoyés"],
            [
                [tid, u["batches"], u["records"], u["not_uploaded"]]
                for tid, u in summary["uploads"]["by_terminal"].items()
            ],
        ),
        "<h2>Chemins utilisés</h2>",
        _table(["Partie", "Chemin"], [[k, v] for k, v in summary["paths"].items()]),
        "<h2>Une carte décodée (carte exemple)</h2>",
        f"<pre>{html.escape(result.sample_card)}</pre>",
    ]
    page = (
        "<!DOCTYPE html><html lang='fr'><head><meta charset='utf-8'>"
        "<title>Carte régionale — démonstration</title><style>"
        "body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:3px 8px}"
        "th{background:#eef}img{max-width:100%;display:block;margin:1em 0}"
        ".ok{color:#060}.ko{color:#a00}small.code{color:#777;font-family:monospace;font-size:10px}pre{font-size:11px;background:#f6f6f6;padding:1em}"
        "</style></head><body>" + "\n".join(sections) + "</body></html>\n"
    )
    (out / "index.html").write_text(page, encoding="utf-8")


def write_report(result: DemoResult, out: Path) -> dict[str, Any]:
    """Write ``summary.json``, the PNGs and ``index.html`` into ``out``; return the summary."""
    out.mkdir(parents=True, exist_ok=True)
    summary = build_summary(result)
    summary["explanations"] = explanations(summary)
    plots = make_plots(result, out)
    summary["report"] = {"html": "index.html", "plots": plots}
    (out / "summary.json").write_text(
        json.dumps(summary, ensure_ascii=False, indent=1, sort_keys=False) + "\n", encoding="utf-8"
    )
    write_html(result, summary, plots, out)
    return summary


def terminal_summary(summary: dict[str, Any], out: Path) -> str:
    """The French summary printed at the end."""
    kinds = {k.value: k.label for k in HolderKind}
    cards = summary["cards_issued"]
    desk = summary["desk_jobs"]
    taps = summary["taps"]
    meals = summary["meals"]
    blocked = summary["blocked_cards"]
    offline = summary["offline_terminal"]
    lines = [
        "",
        "══ Résumé de la journée du 27/11/2026 ══",
        f"Cartes émises : {cards['total']} ("
        + ", ".join(f"{kinds.get(k, k)} {n}" for k, n in cards["by_kind"].items())
        + ")",
        f"Guichet : {desk.get('done', 0)}/{desk.get('created', 0)} demandes de guichet "
        f"traitées par le poste (DeskStation), {desk.get('steps_written', 0)} étapes écrites, "
        f"{desk.get('wrapped_keys_loaded', 0)} clés chargées dans le SAM (Load Card Key)",
        f"Passages : {taps['total']} — acceptés {taps['accepted']}, refusés {taps['refused']} ("
        + ", ".join(f"{REASON_LABELS.get(r, r)} {n}" for r, n in taps["refused_by_reason"].items())
        + ")",
        f"Repas servis : {meals['served']} (aide {euros(meals['aid_cents'])}, porte-monnaie "
        f"{euros(meals['wallet_cents'])}), refusés {meals['refused']}",
        "Par payeur : "
        + ", ".join(
            f"{summary['accounts_fr'].get(k, k)} [{k}] {euros(v)}"
            for k, v in summary["amounts_by_funder"].items()
        ),
        f"Cartes perdues : {blocked['blocked']} bloquées, liste v{blocked['deny_list_version']} "
        f"poussée, {blocked['refused_at_gate_after_push']} refusées « Carte bloquée »",
        f"Hors ligne : {offline.get('terminal')} {offline.get('from')}–{offline.get('until')}, "
        f"{offline.get('taps_while_offline')} passages, rattrapage à {offline.get('caught_up_at')} "
        f"({offline.get('caught_up_records')} enregistrements)",
        f"Envois : {summary['uploads']['batches']} lots, {summary['uploads']['records']} "
        "enregistrements",
        "Anomalies : "
        + (
            ", ".join(
                f"{a['label']} [{a['kind']}] {a['open'] + a['resolved']} "
                f"({a['resolved']} résolues, {a['open']} ouvertes)"
                for a in summary["anomalies"]["by_kind_fr"]
            )
            or "aucune"
        ),
        "À savoir :",
        *(f"  • {line}" for line in summary["explanations"]),
        "APDU via pcscd : {card} carte, {sam} SAM".format(**summary["apdus_through_pcscd"]),
        summary["ledger"]["message"],
        f"Rapport : {out / 'index.html'} ; chiffres : {out / 'summary.json'}",
        "Durées (s) : " + ", ".join(f"{k} {v}" for k, v in summary["timings_s"].items()),
    ]
    return "\n".join(lines)
