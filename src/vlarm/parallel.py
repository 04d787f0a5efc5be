"""Per-episode work on Ray actors: parallel oracle collection and evaluation (issue 8, part 3).

One worker = one Ray actor = one process holding one environment. The env reaches the actor pickled, and a pickled
:class:`vlarm.envs.TabletopEnv` carries only its constructor arguments, so each actor builds its own PyBullet client
in its own process, once, and reuses it for every episode it runs (the scene is rebuilt from the seed at every
reset). An optional ``setup(env)`` (e.g. building an agent from a checkpoint path) also runs in the actor.

Determinism: an episode is a function of its seed alone (scene and oracle RNGs come from the seed; Ravens-style
reset-by-rebuild, Zeng et al. 2020), seeds are handed out in the caller's order to whichever actor is free, and
results are yielded in that same order, buffered at most ``lookahead`` seeds ahead of the oldest unfinished one. So
any number of workers yields the same ``(seed, result)`` sequence as one worker, and a consumer that stops early
(collection reached its count) sees exactly the prefix one worker would have produced; episodes still in flight
are dropped with their actors.

Ray is imported only when it is used (``workers > 1`` or an ``address``). Without an address it is started in this
process's machine on first use, with ``workers`` CPUs, no dashboard, a small object store and its logs kept off the
terminal; it stays up for the rest of the process (``shutdown`` ends it). With an address, the actors run on that
cluster: ``"auto"`` (a cluster started on this machine with ``ray start --head``), ``"HOST:6379"`` from a cluster
node, or ``"ray://HOST:10001"`` from outside it (Ray Client, needs ``pip install "ray[client]"``); every node needs
vlarm installed in the same Python environment.
"""

from __future__ import annotations

import logging
import pickle
import socket
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

#: Object store of a locally started Ray (bytes): results are at most a few MB per episode, and Ray's default
#: (30% of RAM) would reserve far more than a shared 2-core machine should give it.
LOCAL_OBJECT_STORE_BYTES = 256 * 2**20

#: ``(address, CPUs)`` of the Ray connection this module made (None: none, or Ray was initialised by someone else).
_connection: tuple[str | None, int] | None = None
_actor_class = None
#: Started actors waiting for the next :func:`map_episodes` call, and the GPUs each reserves (Ray fixes an actor's
#: resources at creation): reusing them saves a process start and the imports of vlarm (and torch) per call.
_idle: tuple[float, list] = (0.0, [])


def check_workers(workers: int) -> int:
    """``workers`` if it is an integer >= 1, else ValueError naming ``--workers``."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"--workers must be an integer >= 1, got {workers!r}")
    return workers


def uses_ray(workers: int, address: str | None) -> bool:
    """Whether episodes go to Ray actors: more than one worker, or a cluster address."""
    return check_workers(workers) > 1 or address is not None


def init_ray(workers: int, address: str | None = None):
    """Connect to Ray (starting a local instance if needed) and return the ``ray`` module.

    Args:
        workers: actors about to be created; a local instance gets this many CPUs (one per actor).
        address: None for a local instance, else a cluster address (module docstring: ``"auto"``,
            ``"HOST:6379"``, ``"ray://HOST:10001"``).

    A connection this module made earlier is reused when it fits (same address; a local instance with enough CPUs)
    and replaced otherwise; a Ray the caller initialised itself is always used as it is.

    Raises:
        ValueError: the address cannot be reached or is malformed (Ray's reason included).
    """
    global _connection, _idle
    import ray

    if ray.is_initialized() and (_connection is None or (
            _connection[0] == address and (address is not None or _connection[1] >= workers))):
        return ray
    if address is not None:
        _probe(address)   # before giving up a working connection
    if ray.is_initialized():
        ray.shutdown()
        _connection, _idle = None, (0.0, [])
    quiet = {"include_dashboard": False, "logging_level": logging.ERROR, "log_to_driver": False}
    if address is None:
        # "local": a new instance even where `ray start` left one running (which would refuse num_cpus)
        ray.init(address="local", num_cpus=workers, object_store_memory=LOCAL_OBJECT_STORE_BYTES, **quiet)
        _connection = (None, workers)
        return ray
    try:
        ray.init(address=address, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise ValueError(f"--address {address}: cannot connect to a Ray cluster there ({err}); start one with "
                         "`ray start --head` and pass 'auto' on that machine, or HOST:6379 / ray://HOST:10001 "
                         "elsewhere with the cluster's token in RAY_AUTH_TOKEN if it uses token authentication "
                         "(`ray get-auth-token` on the head prints it)") from None
    _connection = (address, 0)
    return ray


def _probe(address: str, timeout_s: float = 5.0) -> None:
    """Fail fast on a ``HOST:PORT`` (or ``ray://HOST:PORT``) nobody listens on: Ray itself retries for minutes."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        return   # "auto", or a form Ray resolves itself
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as err:
        raise ValueError(f"--address {address}: nothing answers at {host}:{port} ({err.strerror or err}); start a "
                         "cluster with `ray start --head` on that machine (it prints the address to use)") from None


def shutdown() -> None:
    """Stop Ray in this process if it is running (tests and one-shot scripts call this when done)."""
    global _connection, _idle
    import sys

    if "ray" in sys.modules and sys.modules["ray"].is_initialized():
        sys.modules["ray"].shutdown()
    _connection, _idle = None, (0.0, [])


class EpisodeWorker:
    """What each actor holds: one env (built in the actor's process), the ``setup(env)`` state and the episode
    function. Runs in-process too (``workers=1``), so both paths execute the same code."""

    def __init__(self):
        self.env = self.episode = self.state = None

    def start(self, env, episode: Callable[[Any, Any, int], Any], setup: Callable[[Any], Any] | None = None) -> bool:
        """Take the env, the episode function and run ``setup(env)``.

        Args:
            env: the env, or its ``pickle`` bytes (what an actor receives: unpickled here, it builds its own
                simulator in this process).
            episode: ``callable(env, state, seed) -> result``.
            setup: optional ``callable(env) -> state``.

        A method rather than the constructor, and the env unpickled here rather than by Ray, so that an env or
        setup failing in a Ray worker comes back to the caller as its own exception, not as a dead actor.
        """
        if isinstance(env, bytes):
            env = pickle.loads(env)
        self.env, self.episode = env, episode
        self.state = setup(env) if setup is not None else None
        return True

    def run(self, seed: int) -> Any:
        """``episode(env, state, seed)``."""
        return self.episode(self.env, self.state, seed)

    def cpu_seconds(self) -> float:
        """CPU time this worker's process has used so far (user + system, seconds)."""
        return time.process_time()

    def stop(self) -> None:
        """Release the env's PyBullet clients and the ``setup`` state (the worker waits for its next ``start``)."""
        if self.env is not None:
            self.env.close()
        self.env = self.episode = self.state = None


def _remote_worker_class():
    global _actor_class
    if _actor_class is None:
        import ray

        _actor_class = ray.remote(EpisodeWorker)
    return _actor_class


def map_episodes(env, episode: Callable[[Any, Any, int], Any], seeds: Iterable[int], *,
                 setup: Callable[[Any], Any] | None = None, workers: int = 1, address: str | None = None,
                 gpus_per_worker: float = 0.0, lookahead: int | None = None) -> Iterator[tuple[int, Any]]:
    """Run ``episode(env, state, seed)`` for every seed and yield ``(seed, result)`` in seed order.

    Args:
        env: a picklable environment (e.g. :class:`vlarm.envs.TabletopEnv`). With one worker and no address it is
            used here as is; otherwise each actor receives a pickled copy, which builds its own simulator there.
        episode: ``callable(env, state, seed) -> result``, picklable (a module-level function or a
            ``functools.partial`` of one); ``state`` is what ``setup`` returned (None without setup).
        seeds: episode seeds, consumed lazily (an endless generator is fine: at most ``lookahead`` are taken
            ahead of the result being waited for).
        setup: optional picklable ``callable(env) -> state``, run once per worker, in the worker (e.g. build an
            agent from a checkpoint path).
        workers: number of actors (1 with no address: run here, sequentially, without importing Ray).
        address: Ray cluster address (see :func:`init_ray`); None starts Ray locally when ``workers > 1``.
        gpus_per_worker: GPUs (a fraction allowed) each actor reserves; Ray hides the GPUs from actors that
            reserve none.
        lookahead: most seeds in flight or finished but not yet yielded (default ``4 * workers``).

    Returns:
        An iterator; close it (or exhaust it) to release the actors. Closing it early waits for the episodes in
        flight (at most one per worker) and drops their results; the actors then wait, idle and without their env,
        for the next call (a local Ray keeps them until :func:`shutdown` or the end of the process). An exception
        (Ctrl-C included) kills them instead, dropping what was in flight at once.

    Raises:
        ValueError: bad ``workers``/``lookahead``, or an unreachable ``address``.
        Exception: whatever ``setup`` or ``episode`` raised in a worker, re-raised here as the same type.
    """
    if not uses_ray(workers, address):
        return _map_here(env, episode, seeds, setup)
    lookahead = 4 * workers if lookahead is None else lookahead
    if lookahead < 1:
        raise ValueError(f"lookahead must be >= 1, got {lookahead}")
    return _map_on_ray(env, episode, seeds, setup, workers, address, gpus_per_worker, lookahead)


def _map_here(env, episode, seeds, setup) -> Iterator[tuple[int, Any]]:
    worker = EpisodeWorker()
    worker.start(env, episode, setup)
    for seed in seeds:
        yield seed, worker.run(seed)


def _get(ray, ref):
    """``ray.get`` that re-raises a worker's exception as its own type (the remote traceback chained)."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as err:
        if isinstance(err.cause, Exception):
            raise err.cause from err
        raise


def idle_worker_cpu_seconds() -> list[float]:
    """CPU seconds used so far by each idle Ray worker process (for benchmarks: the difference before and after a
    :func:`map_episodes` call that reused them is the CPU the call took outside this process); [] without Ray."""
    import sys

    if "ray" not in sys.modules or not sys.modules["ray"].is_initialized():
        return []
    return sys.modules["ray"].get([a.cpu_seconds.remote() for a in _idle[1]])


def _take_actors(n: int, gpus: float) -> list:
    """``n`` actors reserving ``gpus`` GPUs each: idle ones first (idle ones of another kind are killed, since
    they hold CPUs the new ones may need), then new ones."""
    global _idle
    import ray

    kind, idle = _idle
    if kind != gpus:
        for actor in idle:
            ray.kill(actor)
        idle = []
    actors, rest = idle[:n], idle[n:]
    _idle = (gpus, rest)
    actor_class = _remote_worker_class().options(num_cpus=1, num_gpus=gpus)
    return actors + [actor_class.remote() for _ in range(n - len(actors))]


def _release_actors(ray, actors: list, running: dict, gpus: float, reuse: bool) -> None:
    """Kill the actors, or (``reuse``) let the episodes in flight finish, drop them, and park the actors idle."""
    global _idle
    if not reuse:
        for actor in actors:
            ray.kill(actor)
        return
    for ref in running:
        try:
            ray.get(ref)
        except Exception:   # noqa: BLE001, S110 - a dropped episode's failure is of no interest
            pass
    for actor in actors:
        actor.stop.remote()
    kind, idle = _idle
    _idle = (gpus, (idle if kind == gpus else []) + actors)


def _map_on_ray(env, episode, seeds, setup, workers, address, gpus_per_worker, lookahead):
    ray = init_ray(workers, address)
    actors = _take_actors(workers, gpus_per_worker)
    running: dict[Any, tuple[int, Any]] = {}   # object ref -> (index, actor)
    reuse = False
    try:
        env_ref = ray.put(pickle.dumps(env))   # constructor arguments only; every actor builds its own copy
        errors = []
        for ref in [a.start.remote(env_ref, episode, setup) for a in actors]:
            try:   # an env or setup that fails in a worker fails here, with its own error
                _get(ray, ref)
            except Exception as err:   # noqa: BLE001 - collect every actor's outcome, raise the first failure
                errors.append(err)
        if errors:
            raise errors[0]
        free = list(reversed(actors))
        numbered = enumerate(seeds)
        order: deque[tuple[int, int]] = deque()   # (index, seed) handed out and not yet yielded, in order
        finished: dict[int, Any] = {}   # index -> result
        end = object()
        while True:
            while free and len(order) < lookahead and (item := next(numbered, end)) is not end:
                actor = free.pop()
                running[actor.run.remote(item[1])] = (item[0], actor)
                order.append(item)
            if not order:
                reuse = True
                return
            if order[0][0] in finished:
                index, seed = order.popleft()
                yield seed, finished.pop(index)
                continue
            done, _ = ray.wait(list(running), num_returns=1)
            for ref in done:
                index, actor = running.pop(ref)
                finished[index] = _get(ray, ref)
                free.append(actor)
    except GeneratorExit:   # the consumer closed the iterator early: a normal end
        reuse = True
        raise
    finally:
        _release_actors(ray, actors, running, gpus_per_worker, reuse)


__all__ = ["EpisodeWorker", "check_workers", "idle_worker_cpu_seconds", "init_ray", "map_episodes", "shutdown",
           "uses_ray"]
