"""The one run loop: progress bar, Ctrl-C/SIGTERM, time budget, checkpoint cadence, callback.

Every mode (evolution, hybrid GA + SGD, trait search) is a ``Mode``: it knows how
to run one generation and how to checkpoint; this loop decides when, shows
progress and stops cleanly.  A stop (signal, ``max_minutes``, or the callback
returning True) finishes the generation, checkpoints and returns.
"""

from __future__ import annotations

import signal
import time
from typing import Callable, Protocol

from genreg.errors import RunInterrupted


class StopRequest:
    """SIGINT/SIGTERM set a flag; the loop finishes the generation, checkpoints and exits."""

    def __init__(self):
        self.signal = None

    def __enter__(self):
        self._old = {}
        try:
            self._old = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        except ValueError:  # not the main thread: signals stay with their owner
            pass
        return self

    def _handle(self, signum, frame):
        self.signal = signum

    def __exit__(self, *exc):
        for s, handler in self._old.items():
            signal.signal(s, handler)


class Mode(Protocol):
    """What the loop drives (``genreg.runs.evolve.EvolveMode``, the hybrid and search modes)."""

    kind: str
    run_dir: object

    def step(self, state, tick: Callable[[int], object]) -> tuple[object, dict]:
        """Run generation ``state.generation``; returns the next state and its metrics (``tick(n)``
        advances the progress bar by n units)."""

    def checkpoint(self, state) -> None:
        """Save ``state`` (possibly on a background thread)."""

    def flush(self) -> None:
        """Wait until every checkpoint is on disk (re-raise a write error)."""

    def close(self, failed: bool) -> None:
        """Release files and threads."""


def restart_clock(bar, n: int) -> None:
    """Set the count of ``bar`` (a tqdm bar) to ``n`` and time it from now on: the first generation
    of a process pays for Numba compilation and cold caches, so its time would make the first ETA absurd."""
    bar.refresh = lambda *args, **kwargs: None  # reset() would show the count as 0 for a moment
    try:
        bar.reset()
    finally:
        del bar.refresh
    bar.n = bar.last_print_n = bar.initial = n
    bar.refresh()


def run_loop(mode: Mode, state, *, generations: int, checkpoint_every: int, max_minutes: float = 0.0,
             progress: bool = True, on_generation: Callable[[dict], object] | None = None, desc: str = "",
             units_per_generation: int = 1, unit: str = "gen", postfix: Callable[[dict], dict] | None = None,
             resume_hint: str = ""):
    """Run generations ``state.generation .. generations - 1`` of ``mode``; returns ``(state, stopped_by)``.

    stopped_by: None (all generations ran), ``"max_minutes=M"`` or ``"callback"``; a stop by
    SIGINT/SIGTERM checkpoints and then raises ``RunInterrupted``.
    ``state.generation`` counts the generations done; the stop message names the generation
    that the step's metrics name (``record["generation"]``).
    A checkpoint is written every ``checkpoint_every`` generations, at the end and at a stop.
    The bar's clock (rate, ETA) starts after the first generation (``restart_clock``).
    ``on_generation(metrics)`` sees each generation's metrics; returning True stops the run.
    """
    from tqdm import tqdm

    started = time.perf_counter()
    stopped_by = None
    failed = True
    bar = tqdm(total=generations * units_per_generation, initial=state.generation * units_per_generation,
               unit=unit, disable=not progress, dynamic_ncols=True, desc=desc)
    first = state.generation
    try:
        with StopRequest() as stop:
            while state.generation < generations:
                g = state.generation
                state, record = mode.step(state, bar.update)
                if g == first:  # counted, but not timed
                    restart_clock(bar, bar.n + (1 if units_per_generation == 1 else 0))
                elif units_per_generation == 1:
                    bar.update(1)
                if postfix is not None:
                    bar.set_postfix(postfix(record), refresh=units_per_generation != 1)
                wants_stop = on_generation is not None and on_generation(dict(record)) is True
                done = state.generation >= generations
                out_of_time = max_minutes > 0 and time.perf_counter() - started >= 60.0 * max_minutes
                if stop.signal is not None:
                    stopped_by = f"signal {stop.signal}"
                elif wants_stop and not done:
                    stopped_by = "callback"
                elif out_of_time and not done:
                    stopped_by = f"max_minutes={max_minutes:g}"
                if stopped_by or done or state.generation % checkpoint_every == 0:
                    mode.checkpoint(state)
                if stopped_by:
                    mode.flush()
                    hint = f"; continue with: {resume_hint}" if resume_hint else ""
                    bar.write(f"genreg: stopped by {stopped_by} after generation {record.get('generation', g)}; "
                              f"checkpoint written{hint}")
                    break
        failed = False
    finally:
        bar.close()
        mode.close(failed)
    if stop.signal is not None:  # scripts must be able to tell: the CLI exits with 128 + the signal
        raise RunInterrupted(stop.signal, f"stopped by signal {stop.signal} (checkpoint written)")
    return state, stopped_by
