"""Progress of a ``lossreg conformance`` run: a live display on a terminal, plain lines otherwise.

On a terminal (and when rich is installed) each backend gets a bar that advances as each of its
losses finishes, with the failures so far and the time spent; elsewhere (a pipe, a CI log, or
``--json``) one line is printed per backend as it finishes, and between those a line of how far
the run has got at most every ``interval`` seconds, so that a CI log is never silent for minutes
(with ``--jobs`` the slow backends finish last). Either way the total wall time is printed at
the end. Everything goes to stderr, so stdout carries only the matrix.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import IO, Any


class ConformanceProgress:
    """Receives :func:`lossreg.conformance.run`'s ``step`` and ``progress`` callbacks.

    ``totals`` maps each backend label to the number of losses it will run. Use as a context
    manager: the live display (if any) stops on exit and the total time is printed.
    """

    def __init__(self, totals: dict[str, int], *, live: bool | None = None, stream: IO[str] | None = None,
                 interval: float = 15.0) -> None:
        self.stream = stream or sys.stderr
        self.interval = interval
        self.totals = totals
        self.failed: dict[str, int] = dict.fromkeys(totals, 0)
        self.done: dict[str, int] = dict.fromkeys(totals, 0)
        self.start = self._said = time.perf_counter()
        if live is None:
            live = bool(getattr(self.stream, "isatty", lambda: False)())
        self._bars: Any = None
        self._tasks: dict[str, Any] = {}
        if live:
            try:
                from rich.console import Console
                from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
            except ImportError:  # rich is optional: plain lines then
                live = False
            else:
                self._bars = Progress(TextColumn("{task.description:<18}"), BarColumn(), MofNCompleteColumn(),
                                      TextColumn("losses {task.fields[status]}"), TimeElapsedColumn(),
                                      console=Console(file=self.stream), transient=False)
                for name, total in totals.items():
                    self._tasks[name] = self._bars.add_task(name, total=total, status="")
        self.live = live

    def __enter__(self) -> ConformanceProgress:
        if self._bars is not None:
            self._bars.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, *exc: Any) -> None:
        if self._bars is not None:
            self._bars.stop()
        if kind is None:  # a run refused before it started (a bad argument) has no time worth printing
            self.finish()

    def step(self, backend: str, device: str, loss: str, outcomes: Sequence[Any]) -> None:
        """One loss finished on one backend (all its dtypes and paths)."""
        name = self._name(backend, device)
        self.done[name] = self.done.get(name, 0) + 1
        self.failed[name] = self.failed.get(name, 0) + sum(o.status == "failed" for o in outcomes)
        if self._bars is not None and name in self._tasks:
            failed = self.failed[name]
            self._bars.update(self._tasks[name], advance=1,
                              status=f"[red]{failed} failed[/red]" if failed else f"(last: {loss})")
        elif time.perf_counter() - self._said >= self.interval:
            self._said = time.perf_counter()
            failed = sum(self.failed.values())
            note = f", {failed} failed" if failed else ""
            print(f"lossreg conformance: {sum(self.done.values())} of {sum(self.totals.values())} losses done "
                  f"({name}: {self.done[name]} of {self.totals.get(name, '?')}){note}, "
                  f"{self._said - self.start:.0f} s", file=self.stream, flush=True)

    def backend_done(self, backend: str, device: str, seconds: float) -> None:
        """Every loss finished on a backend; ``seconds`` is the time spent on it (summed over jobs)."""
        name = self._name(backend, device)
        failed = self.failed.get(name, 0)
        note = f", {failed} failed" if failed else ""
        if self._bars is not None and name in self._tasks:
            self._bars.update(self._tasks[name], status=f"done in {seconds:.1f} s{note}")
        else:
            print(f"lossreg conformance: {name} on {device} took {seconds:.1f} s{note}", file=self.stream, flush=True)

    def finish(self) -> None:
        print(f"lossreg conformance: total {time.perf_counter() - self.start:.1f} s", file=self.stream, flush=True)

    def _name(self, backend: str, device: str) -> str:
        return backend if backend in self.totals else f"{backend}@{device}"
