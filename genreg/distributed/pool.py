"""Worker processes that each host one service object, and an in-process pool with the same interface.

A *service* is a plain Python object (``genreg.distributed.es.MemberService``, an island) built on
the worker from a *recipe*: a picklable callable put into Ray's object store once, so that each
worker, and any worker started to replace a lost one, reads the task's data from there, never
from a generation's messages.  A call names a method of the service; its arguments and result
travel as pickled bytes, which the pool counts (``bytes_sent``, ``bytes_received``).

- ``RayPool(cluster, recipe, n)``: n Ray actors (``Host``), each reserving ``threads`` CPUs and
  running Numba on that many threads.  A worker that dies (its process killed, its machine gone)
  makes ``result`` raise ``WorkerLost``; ``replace(w)`` starts a new one from the same recipe.
- ``LocalPool(recipe, n)``: the same services in this process, called one after the other (the
  reference a distributed run must equal, bit for bit).
"""

from __future__ import annotations

import os
import pickle


from genreg.errors import ClusterError, GenregError

PROTOCOL = 5


class WorkerLost(Exception):
    """A worker process died before it answered (internal: the caller re-sends the work)."""

    def __init__(self, worker: int, detail: str = ""):
        super().__init__(f"worker {worker} was lost{': ' + detail if detail else ''}")
        self.worker = worker


class Host:
    """What runs in a worker process: one service built from a recipe, answering pickled calls."""

    def __init__(self, recipe, threads: int = 1):
        set_threads(threads)
        self.service = recipe()

    def pid(self) -> int:
        return os.getpid()

    def call(self, method: str, payload: bytes) -> bytes:
        return answer(self.service, method, payload)


def answer(service, method: str, payload: bytes) -> bytes:
    """``service.method(*args)`` with ``args = pickle.loads(payload)``, pickled; a genreg error comes back as a value."""
    try:
        result = ("ok", getattr(service, method)(*pickle.loads(payload)))
    except GenregError as exc:  # the user's mistake (a fitness callable's error, a bad value): shown as is
        result = ("error", exc)
    return pickle.dumps(result, protocol=PROTOCOL)


def set_threads(threads: int) -> None:
    """Numba and BLAS threads of this process: ``threads`` (at most what Numba was started with)."""
    import numba
    from threadpoolctl import threadpool_limits

    numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))
    threadpool_limits(limits=int(threads), user_api="blas")


def unpack(data: bytes):
    """A call's result, re-raising the genreg error the worker reported."""
    status, value = pickle.loads(data)
    if status == "error":
        raise value
    return value


class LocalPool:
    """n services in this process; ``submit`` runs the call at once and ``result`` hands it over."""

    remote = False

    def __init__(self, recipe, n: int):
        self.services = [recipe() for _ in range(int(n))]
        self.dead: set[int] = set()  # (nothing dies in-process)
        self.bytes_sent = self.bytes_received = self.replaced = 0

    @property
    def size(self) -> int:
        return len(self.services)

    def alive(self) -> int:
        return len(self.services)

    def submit(self, w: int, method: str, *args):
        payload = pickle.dumps(args, protocol=PROTOCOL)
        self.bytes_sent += len(payload)
        data = answer(self.services[w], method, payload)
        self.bytes_received += len(data)
        return (w, data)

    def wait(self, tickets: list) -> list:
        """The tickets that have finished (all of them, in this process)."""
        return list(tickets)

    def result(self, ticket):
        return unpack(ticket[1])

    def replace(self, w: int) -> None:  # pragma: no cover - nothing dies in-process
        raise ClusterError("an in-process worker cannot be replaced")

    def pids(self) -> list[int]:
        return [os.getpid()] * len(self.services)

    def close(self) -> None:
        self.services = []


class RayPool:
    """n Ray actors hosting the recipe's service; lost actors are detected per call and replaced on demand."""

    remote = True

    def __init__(self, cluster, recipe, n: int, threads: int = 1):
        self.ray = cluster.ray
        self.threads = int(threads)
        self.actor_class = self.ray.remote(Host).options(num_cpus=self.threads, max_restarts=0, max_task_retries=0)
        self.recipe = self.ray.put(recipe)  # once: every worker (and every replacement) reads it from the store
        self.actors = [self._start() for _ in range(int(n))]
        self.dead: set[int] = set()
        self.bytes_sent = self.bytes_received = self.replaced = 0
        self._pids = self.ray.get([a.pid.remote() for a in self.actors])  # waits until every worker is up

    def _start(self):
        return self.actor_class.remote(self.recipe, self.threads)

    @property
    def size(self) -> int:
        return len(self.actors)

    def alive(self) -> int:
        return len(self.actors) - len(self.dead)

    def submit(self, w: int, method: str, *args):
        payload = pickle.dumps(args, protocol=PROTOCOL)
        self.bytes_sent += len(payload)
        return (w, self.actors[w].call.remote(method, payload))

    def wait(self, tickets: list) -> list:
        """Block until at least one of ``tickets`` has finished; returns the finished ones."""
        refs = {t[1]: t for t in tickets}
        ready, _ = self.ray.wait(list(refs), num_returns=1)
        return [refs[r] for r in ready]

    def result(self, ticket):
        """The call's result; ``WorkerLost`` if its worker died first (the worker is marked dead)."""
        w, ref = ticket
        try:
            data = self.ray.get(ref)
        except self.ray.exceptions.RayActorError as exc:
            self.dead.add(w)
            raise WorkerLost(w, type(exc).__name__) from None
        self.bytes_received += len(data)
        return unpack(data)

    def replace(self, w: int) -> None:
        """Start a new worker in place of worker ``w`` (from the same recipe; its state starts empty)."""
        try:
            self.ray.kill(self.actors[w], no_restart=True)
        except Exception:  # noqa: BLE001 - already gone
            pass
        self.actors[w] = self._start()
        self._pids[w] = self.ray.get(self.actors[w].pid.remote())
        self.dead.discard(w)
        self.replaced += 1

    def pids(self) -> list[int]:
        """The worker processes' ids (to watch them, or to kill one in a test)."""
        return list(self._pids)

    def close(self) -> None:
        for actor in self.actors:
            try:
                self.ray.kill(actor, no_restart=True)
            except Exception:  # noqa: BLE001
                pass
        self.actors = []


def gather(pool, tickets: list, on_lost) -> list:
    """Wait for every ticket; returns their results in ticket order.

    on_lost(index, WorkerLost) -> a new ticket for the same work (sent elsewhere), called when a
    ticket's worker died; a genreg error from a worker is raised here.
    """
    results = [None] * len(tickets)
    pending = {id(t): (i, t) for i, t in enumerate(tickets)}
    while pending:
        for ticket in pool.wait([t for _, t in pending.values()]):
            i, _ = pending.pop(id(ticket))
            try:
                results[i] = pool.result(ticket)
            except WorkerLost as lost:
                retry = on_lost(i, lost)
                pending[id(retry)] = (i, retry)
    return results


