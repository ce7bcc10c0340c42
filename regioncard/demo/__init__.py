"""``regioncard demo``: a day in the region on embedded defaults, or the decoded sample card.

``regioncard demo [--out out/demo] [--holders 50] [--seed N] [--quick]`` starts the backend
(SQLite, SoftHSM2), pcscd with the emulated cards and SAMs, issues the cards at the desk, plays
the day 2026-11-27 on a simulated clock and writes the report (docs/demo.md).
``regioncard demo --sample-card`` prints the decoded sample card, application by application.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

from card_schema.argtypes import int_at_least
from card_schema.errors import RegionCardError
from regioncard.demo.sample import render_card

log = logging.getLogger(__name__)

__all__ = ["register", "render_card", "run"]

DEMO_HELP = """\
Une journée dans la région sur les réglages embarqués : le backend (SQLite, SoftHSM2), pcscd avec
les cartes et SAM émulés, l'émission des cartes au guichet, la journée du 27 novembre 2026 sur une
horloge simulée, puis le rapport (docs/demo.md). --sample-card affiche seulement la carte exemple
décodée, application par application.
(A day in the region on embedded defaults; --sample-card prints the decoded sample card.)
"""


def register(subparsers: Any) -> None:
    """Add ``demo`` to the ``regioncard`` parser."""
    demo = subparsers.add_parser(
        "demo",
        help="une journée dans la région (backend, guichet, valideurs, cantines, rapport)",
        description=DEMO_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument("--out", type=Path, default=Path("out/demo"), help="dossier du rapport")
    demo.add_argument(
        "--holders", type=int_at_least(8), default=50, help="nombre de porteurs (8 au moins)"
    )
    demo.add_argument("--seed", type=int, default=2026, help="graine du tirage de la journée")
    demo.add_argument(
        "--quick", action="store_true", help="journée allégée (envois toutes les heures)"
    )
    demo.add_argument(
        "--sample-card", action="store_true", help="afficher seulement la carte exemple décodée"
    )
    demo.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo (or print the sample card)."""
    if args.sample_card:
        print(render_card())
        return 0
    from regioncard.demo.progress import Progress
    from regioncard.demo.report import terminal_summary, write_report
    from regioncard.demo.runner import Demo, DemoOptions

    try:  # before anything starts: an unwritable report folder is known at once
        args.out.mkdir(parents=True, exist_ok=True)
        probe = args.out / ".regioncard-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise RegionCardError(
            f"dossier du rapport inutilisable : {args.out} ({exc.strerror}) / "
            "cannot write the report folder"
        ) from None
    options = DemoOptions(out=args.out, holders=args.holders, seed=args.seed, quick=args.quick)
    progress = Progress()
    started = time.monotonic()
    progress.write(
        f"Carte régionale Hauts-de-France — démonstration ({options.holders} porteurs, "
        f"graine {options.seed})\n"
    )
    demo = Demo(options, progress)
    result = demo.run()
    result.sample_card = render_card()
    report_started = time.monotonic()
    summary = write_report(result, options.out)
    summary["timings_s"]["report"] = round(time.monotonic() - report_started, 2)
    summary["timings_s"]["total"] = round(time.monotonic() - started, 2)
    (options.out / "summary.json").write_text(
        json.dumps(summary, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )
    print(terminal_summary(summary, options.out))
    return 0 if summary["ledger"]["balanced"] else 1
