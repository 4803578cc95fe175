"""Where parallel work runs: local worker processes or a Dask cluster, behind one small interface.

``with executor(workers, dask) as pool:`` yields None (run serially) or a :class:`Pool` whose
``submit(fn, *args)`` returns a future with ``.result()`` and whose ``as_completed(futures)``
yields them as they finish.  Sweeps and the NAS use it.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import as_completed as cf_as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator


@dataclass(frozen=True)
class Pool:
    submit: Callable[..., Any]
    as_completed: Callable[[Iterable[Any]], Iterator[Any]]

    def map(self, fn: Callable, args: list[tuple]) -> list:
        """``[fn(*a) for a in args]`` in parallel, results in order."""
        futs = [self.submit(fn, *a) for a in args]
        return [f.result() for f in futs]


def worker_context():
    """Start method for local worker processes: forkserver (spawn where it is missing).

    Plain fork is unsafe here: a parent that has already run torch (training, quantization)
    hands its OpenMP thread pool's locks to the children, which can then hang in torch.
    """
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


#: seconds to wait for a Dask scheduler before giving up with a one-line error
CONNECT_TIMEOUT_S = 5.0


def check_address(address: str | None, option: str = "--dask") -> None:
    """Refuse a ``dask`` value that is neither None, ``"local"`` nor a scheduler address (``tcp://host:port``
    or ``host:port``, port 1..65535): :class:`~aidi.analysis.errors.UserError` naming ``option`` (the API names
    its parameter ``dask``).  Connects to nothing."""
    from .errors import UserError

    if address is None or address == "local":
        return
    host, sep, port = str(address).rpartition("://")[2].rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"{option}: expected 'local' or a scheduler address like tcp://HOST:PORT, got {address!r}")


def connect(address: str, timeout_s: float | None = None):
    """A ``distributed.Client`` for a scheduler address (``tcp://host:port`` or ``host:port``).

    Raises :class:`~aidi.analysis.errors.UserError` (one line) for an address that is not one
    (:func:`check_address`), or a scheduler that does not answer within ``timeout_s``.
    """
    import logging

    from distributed import Client

    from .errors import UserError

    check_address(address)
    timeout_s = CONNECT_TIMEOUT_S if timeout_s is None else timeout_s
    quiet = logging.getLogger("distributed")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # the failed connection's own log lines would bury the one-line error
    try:
        return Client(address, timeout=f"{timeout_s}s")
    except (OSError, TimeoutError, ValueError) as exc:
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise UserError(f"--dask {address}: no Dask scheduler answered within {timeout_s:g} s ({why})") from None
    finally:
        quiet.setLevel(level)


@contextmanager
def executor(workers: int = 1, dask: str | None = None) -> Iterator[Pool | None]:
    """``dask``: a scheduler address, or ``"local"`` for a LocalCluster of ``workers`` processes."""
    if dask:
        from distributed import Client, LocalCluster
        from distributed import as_completed as d_as_completed

        cluster = None
        if dask == "local":
            cluster = LocalCluster(n_workers=max(1, workers), threads_per_worker=1, processes=True,
                                   dashboard_address=None)
            client = Client(cluster)
        else:
            client = connect(dask)
        try:
            yield Pool(lambda fn, *a: client.submit(fn, *a, pure=False), d_as_completed)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    elif workers > 1:
        with ProcessPoolExecutor(max_workers=workers, mp_context=worker_context()) as ex:
            yield Pool(ex.submit, cf_as_completed)
    else:
        yield None
