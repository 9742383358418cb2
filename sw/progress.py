"""Progress of the long stages of ``eqprop demo`` and ``eqprop bench`` on the terminal."""

from __future__ import annotations

import contextlib
import threading


@contextlib.contextmanager
def ticking(description: str, enabled: bool = True):
    """A status line with the elapsed time, for a step that reports no count of its own (a simulator,
    Yosys or nextpnr running in their own processes)."""
    if not enabled:
        yield
        return
    from tqdm import tqdm

    bar = tqdm(total=None, desc=description, bar_format="{desc}: {elapsed}", leave=False)
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(1.0):
            bar.refresh()

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        bar.close()


@contextlib.contextmanager
def counting(description: str, total: int, unit: str, enabled: bool = True):
    """A bar over ``total`` steps; yields the function to call after each one (a no-op when disabled)."""
    if not enabled:
        yield lambda done: None
        return
    from tqdm import tqdm

    bar = tqdm(total=total, desc=description, unit=unit, leave=False)

    def update(done: int) -> None:
        bar.update(done - bar.n)

    try:
        yield update
    finally:
        bar.close()
