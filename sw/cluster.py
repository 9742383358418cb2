"""Where eqprop's independent runs execute (the sweep's points, the bench's trainings): Dask.

By default an embedded ``LocalCluster`` on this machine: one worker process per core (or as many
as asked), one thread each, and every task sets torch to one thread, so N runs keep N cores busy
without their thread pools contending. ``scheduler="tcp://HOST:8786"`` sends the same tasks to an
existing cluster instead (``dask scheduler`` on one machine, ``dask worker tcp://HOST:8786
--nthreads 1`` on each, with eqprop installed beside them); nothing else changes.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Any, Callable, Iterator

from .errors import EqpropError

#: Seconds to wait for an existing cluster's scheduler to answer.
CONNECT_TIMEOUT_S = 10


@contextlib.contextmanager
def dask_client(scheduler: str | None = None, workers: int | None = None) -> Iterator[Any]:
    """A ``dask.distributed.Client``: of the cluster at ``scheduler``, else of a LocalCluster with
    ``workers`` single-threaded worker processes (default: one per core), closed on the way out."""
    from dask.distributed import Client, LocalCluster

    if scheduler is not None:
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError, ValueError) as exc:
            raise EqpropError(f"cannot reach the Dask scheduler {scheduler}: {exc}") from None
        with client:
            yield client
        return
    with LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1, processes=True,
                      dashboard_address=None, silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        yield client


def _in_one_thread(fn: Callable, item: Any) -> Any:
    """``fn(item)`` with torch on one thread: each worker thread is one core's worth of work."""
    import torch

    torch.set_num_threads(1)
    return fn(item)


def run_each(client: Any, fn: Callable, items: list, keys: list[str] | None = None) -> Iterator[tuple[int, Any, BaseException | None]]:
    """Run ``fn(item)`` for each item on the cluster (task names ``keys``, default Dask's own); yield
    ``(index, result, None)`` or ``(index, None, error)`` in the order they finish."""
    from dask.distributed import as_completed

    keys = keys or [None] * len(items)
    futures = {client.submit(_in_one_thread, fn, item, key=key, pure=False): i for i, (item, key) in enumerate(zip(items, keys))}
    for future in as_completed(futures):
        index = futures.pop(future)
        try:
            yield index, future.result(), None
        except Exception as error:  # noqa: BLE001 - the task's own failure, handed to the caller to record
            yield index, None, error
        finally:
            future.release()  # the result is the caller's now: the worker may drop it
