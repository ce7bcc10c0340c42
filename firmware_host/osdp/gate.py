"""What the gate validator calls: barrier, lights, buzzer and display behind one interface.

:class:`GatePeripheral` is the interface; :class:`OSDPGatePeripheral` drives a barrier controller
over OSDP; :class:`ConsoleGatePeripheral` only logs (and prints when given a stream), for terminals
without a barrier (desks, canteen tills) and for development.

Safe state. When the peripheral stops answering, the gate is out of service: ``signal_valid``
raises :class:`~firmware_host.osdp.errors.PeripheralOfflineError` so the validator refuses the
card, the outage is logged, and "Hors service" is sent if the line still takes commands. The
barrier itself is held in the configured safe position by the controller's own watchdog (closed,
or open when an evacuation order is in force). When the peripheral answers again, the link
supervisor reconnects by itself and the gate re-applies its position (closed and back in service,
or still open under an evacuation order).
"""

from __future__ import annotations

import abc
import enum
import logging
import threading
import time
from dataclasses import dataclass
from typing import TextIO

import osdp

from card_schema.osdp_tables import Input, OutputControl
from firmware_host.osdp.control_panel import OSDPControlPanel, wait_until
from firmware_host.osdp.errors import PeripheralError, PeripheralOfflineError

log = logging.getLogger(__name__)


class GateText:
    """What a passenger reads on the gate's display (French; at most 32 bytes each)."""

    IDLE = "Présentez votre carte"
    VALID = "Bon voyage"
    REFUSED = "Carte refusée"
    OUT_OF_SERVICE = "Hors service"
    EVACUATION = "Évacuation - passage libre"


class SafeState(enum.Enum):
    """Barrier position while the gate cannot work normally."""

    CLOSED = "closed"
    OPEN = "open"  # an evacuation order is in force


@dataclass(frozen=True)
class GateHealth:
    """Health of the gate peripheral, for supervision screens and logs.

    Attributes:
        online: the peripheral answers, secure channel up.
        safe_state: position the gate falls back to.
        outages: number of times the peripheral stopped answering since start.
        since: ``time.monotonic()`` of the last change of ``online``.
    """

    online: bool
    safe_state: SafeState
    outages: int
    since: float


class GatePeripheral(abc.ABC):
    """The barrier, lights, buzzer and display of one gate, as the validator sees them."""

    @abc.abstractmethod
    def signal_valid(self, text: str = GateText.VALID) -> None:
        """Valid card: open the barrier (timed), green light, ``text`` on the display.

        Raises:
            PeripheralOfflineError: the gate is out of service; the validator must refuse.
        """

    @abc.abstractmethod
    def signal_refused(self, text: str = GateText.REFUSED) -> None:
        """Refused card: red light, buzzer, ``text`` on the display; the barrier stays closed."""

    @abc.abstractmethod
    def wait_passage(self, timeout: float) -> bool:
        """After ``signal_valid``: wait for the passage, then close the barrier.

        Returns:
            ``True`` when the passage sensor reported the passage, ``False`` on timeout (the
            barrier is closed in both cases, unless an evacuation order holds it open).
        """

    @abc.abstractmethod
    def health(self) -> GateHealth:
        """Current health of the peripheral."""

    @abc.abstractmethod
    def set_safe_state(self, state: SafeState) -> None:
        """Change the safe position; ``SafeState.OPEN`` opens the barrier now (evacuation)."""

    @property
    def online(self) -> bool:
        """Whether the gate can let someone through now."""
        return self.health().online

    def close(self) -> None:  # noqa: B027 - optional hook, most peripherals hold nothing
        """Release the peripheral."""


class OSDPGatePeripheral(GatePeripheral):
    """A barrier controller driven over OSDP.

    Args:
        control_panel: the control panel for the gate's serial line (started here if needed).
        safe_state: position to fall back to when the gate cannot work normally.
        open_time_s: how long the barrier stays open waiting for the passage; also sent to the
            controller as the output timer, so the barrier closes even if the host dies.
        display_time_s: how long the valid/refused texts stay on the display.
        restore_wait_s: how long a signal waits, after the link came back, for the gate to be
            restored to its resting position before it gives up as out of service.
    """

    def __init__(
        self,
        control_panel: OSDPControlPanel,
        *,
        safe_state: SafeState = SafeState.CLOSED,
        open_time_s: float = 8.0,
        display_time_s: int = 3,
        restore_wait_s: float = 2.0,
    ) -> None:
        self.cp = control_panel
        self._safe_state = safe_state
        self.open_time_s = open_time_s
        self.display_time_s = display_time_s
        self.restore_wait_s = restore_wait_s
        # Set once the resting position has been re-applied after the link came up: a signal
        # sent before that would race with the restore and be overwritten by the idle screen.
        self._ready = threading.Event()
        self._cond = threading.Condition()
        self._passages = 0
        self._sensor_active = False
        self._restore_needed = threading.Event()
        self._stop = threading.Event()
        control_panel.on_link_change = self._on_link_change
        control_panel.on_input_change = self._on_input_change
        control_panel.on_tamper_change = self._on_tamper_change
        self._worker = threading.Thread(name="gate-restore", target=self._restore_loop, daemon=True)
        self._worker.start()
        if control_panel._supervisor is None:
            control_panel.start()

    # --- the interface -----------------------------------------------------------------------

    @property
    def _online(self) -> bool:
        # The control panel's link state is the one source of truth: the gate is online exactly
        # when its link is up, with no window where one has changed and the other not yet.
        return self.cp.link_up

    def _require_ready(self) -> None:
        if not (self._online and self._ready.wait(self.restore_wait_s)):
            raise PeripheralOfflineError("gate out of service: barrier controller not answering")

    def signal_valid(self, text: str = GateText.VALID) -> None:
        """See :meth:`GatePeripheral.signal_valid`."""
        self._require_ready()
        timer = round(self.open_time_s * 10)
        with self._cond:
            self._passage_mark = self._passages
        if self._safe_state is SafeState.CLOSED:
            self.cp.output(OutputControl.ON_TIMED, timer_100ms=timer)
        self.cp.led(osdp.CommandLEDColor.Green, temporary_100ms=timer)
        self.cp.text(text, temporary_s=self.display_time_s)
        log.info("gate open for %.1f s: %s", self.open_time_s, text)

    def signal_refused(self, text: str = GateText.REFUSED) -> None:
        """See :meth:`GatePeripheral.signal_refused`."""
        self._require_ready()
        self.cp.led(osdp.CommandLEDColor.Red, temporary_100ms=self.display_time_s * 10)
        self.cp.buzzer()
        self.cp.text(text, temporary_s=self.display_time_s)
        log.info("gate refused: %s", text)

    def wait_passage(self, timeout: float) -> bool:
        """See :meth:`GatePeripheral.wait_passage`."""
        with self._cond:
            mark = getattr(self, "_passage_mark", self._passages)
            wait_until(self._cond, lambda: self._passages > mark or not self._online, timeout)
            passed = self._passages > mark
        if self._safe_state is SafeState.CLOSED and self._online:
            try:
                self.cp.output(OutputControl.OFF_ABORT_TIMED)
            except PeripheralError as exc:
                log.error("could not close the barrier: %s", exc)
        log.info("passage %s", "done" if passed else "not seen; barrier closed")
        return passed

    def health(self) -> GateHealth:
        """See :meth:`GatePeripheral.health`."""
        link = self.cp.link_state()
        return GateHealth(link.up, self._safe_state, link.outages, link.since)

    def set_safe_state(self, state: SafeState) -> None:
        """See :meth:`GatePeripheral.set_safe_state`."""
        log.warning("gate safe state: %s", state.value)
        self._safe_state = state
        if self._online:
            self._apply_position()

    def close(self) -> None:
        """Stop the restore worker and the control panel."""
        self._stop.set()
        self._restore_needed.set()
        self._worker.join(timeout=2)
        self.cp.stop()

    # --- link and inputs ---------------------------------------------------------------------

    def _on_link_change(self, up: bool) -> None:
        with self._cond:
            if not up:
                self._ready.clear()
            self._cond.notify_all()  # wakes wait_passage, which also ends when the link drops
        if up:
            log.info("gate peripheral back; restoring the gate")
            self._restore_needed.set()
        else:
            log.error(
                "gate peripheral not answering: out of service, barrier held %s by the controller",
                self._safe_state.value,
            )
            self._show_out_of_service()

    def _on_input_change(self, number: Input, active: bool) -> None:
        if number is not Input.PASSAGE_SENSOR:
            return
        with self._cond:
            if self._sensor_active and not active:
                self._passages += 1
                log.info("passage sensor: passage complete")
            self._sensor_active = active
            self._cond.notify_all()

    def _on_tamper_change(self, open_: bool) -> None:
        if open_:
            log.warning("gate cabinet opened (tamper switch)")

    def _show_out_of_service(self) -> None:
        # Best effort: libosdp still queues commands until it declares the peripheral offline,
        # and they go out if the line comes back; nothing waits for an answer.
        try:
            self.cp.queue_text(GateText.OUT_OF_SERVICE)
        except Exception as exc:  # the binding raises bare exceptions on a dead line
            log.debug("could not show the outage on the display: %s", exc)

    def _restore_loop(self) -> None:
        while not self._stop.is_set():
            self._restore_needed.wait()
            self._restore_needed.clear()
            if self._stop.is_set() or not self._online:
                continue
            try:
                missing = self.cp.missing_capabilities()
                if missing:
                    log.error("gate peripheral lacks: %s", ", ".join(missing))
                self._apply_position()
            except PeripheralError as exc:
                log.error("could not restore the gate: %s", exc)
            else:
                if self._online:
                    self._ready.set()

    def _apply_position(self) -> None:
        if self._safe_state is SafeState.OPEN:
            self.cp.output(OutputControl.ON_ABORT_TIMED)
            self.cp.led(osdp.CommandLEDColor.Green)
            self.cp.text(GateText.EVACUATION)
        else:
            self.cp.output(OutputControl.OFF_ABORT_TIMED)
            self.cp.led(osdp.CommandLEDColor.Black)
            self.cp.text(GateText.IDLE)


class ConsoleGatePeripheral(GatePeripheral):
    """A gate without barrier hardware: every signal is logged, and printed if ``out`` is given.

    Args:
        out: stream to print the signals on (a terminal's console), or ``None``.
        assume_passage: what ``wait_passage`` returns, there being no sensor to ask.
    """

    def __init__(self, out: TextIO | None = None, *, assume_passage: bool = True) -> None:
        self._out = out
        self._assume_passage = assume_passage
        self._safe_state = SafeState.CLOSED
        self._since = time.monotonic()
        self.signals: list[tuple[str, str]] = []

    def _emit(self, kind: str, text: str) -> None:
        self.signals.append((kind, text))
        log.info("gate %s: %s", kind, text)
        if self._out is not None:
            print(f"[portique] {kind}: {text}", file=self._out)

    def signal_valid(self, text: str = GateText.VALID) -> None:
        """See :meth:`GatePeripheral.signal_valid`."""
        self._emit("valid", text)

    def signal_refused(self, text: str = GateText.REFUSED) -> None:
        """See :meth:`GatePeripheral.signal_refused`."""
        self._emit("refused", text)

    def wait_passage(self, timeout: float) -> bool:
        """See :meth:`GatePeripheral.wait_passage`."""
        self._emit("passage", "oui" if self._assume_passage else "non")
        return self._assume_passage

    def health(self) -> GateHealth:
        """See :meth:`GatePeripheral.health`: a console is always there."""
        return GateHealth(True, self._safe_state, 0, self._since)

    def set_safe_state(self, state: SafeState) -> None:
        """See :meth:`GatePeripheral.set_safe_state`."""
        self._safe_state = state
        self._emit("safe-state", GateText.EVACUATION if state is SafeState.OPEN else "fermé")
