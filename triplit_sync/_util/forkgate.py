"""No ``os.fork()`` while a thread of this process is inside SQLite.

SQLite keeps process-wide mutexes (its VFS and inode tables). A thread inside an SQLite call
runs without the GIL, so another thread may fork right then; the child inherits those mutexes
locked by a thread it does not have, and its first ``sqlite3.connect`` waits forever (a forked
pool worker of a client created before the fork hung exactly so). Every SQLite call of the
package runs in :func:`section`; a fork waits (up to :data:`FORK_WAIT` seconds) until no thread
is in one, and no thread enters one until the fork is done.
"""

from __future__ import annotations

import logging
import os
import threading
from contextlib import contextmanager
from typing import Iterator

logger = logging.getLogger(__name__)

#: How long a fork waits for SQLite calls of other threads to end (a stuck one must not stop
#: the process from forking; the child may then hang in SQLite, and the warning says why).
FORK_WAIT = 5.0


class _Gate:
    def __init__(self) -> None:
        self.cond = threading.Condition(threading.Lock())
        self.active = 0
        self.forking = False
        self.depth = threading.local()  # a thread nested in a section never waits for a fork


_gate = _Gate()


@contextmanager
def section() -> Iterator[None]:
    """Run an SQLite call (reentrant); waits while a fork is under way."""
    gate = _gate
    depth = getattr(gate.depth, "n", 0)
    if depth == 0:
        with gate.cond:
            while gate.forking:
                gate.cond.wait()
            gate.active += 1
    gate.depth.n = depth + 1
    try:
        yield
    finally:
        gate.depth.n = depth
        if depth == 0:
            with gate.cond:
                gate.active -= 1
                if gate.active == 0:
                    gate.cond.notify_all()


def _before_fork() -> None:
    gate = _gate
    gate.cond.acquire()  # held across the fork: no thread is half-way into or out of a section
    gate.forking = True
    if getattr(gate.depth, "n", 0) == 0 and not gate.cond.wait_for(lambda: gate.active == 0, FORK_WAIT):
        logger.warning("forking while another thread has been inside SQLite for %.0f s; the child may "
                       "hang opening its local database", FORK_WAIT)


def _after_fork_in_parent() -> None:
    gate = _gate
    gate.forking = False
    gate.cond.notify_all()
    gate.cond.release()


def _after_fork_in_child() -> None:
    global _gate
    _gate = _Gate()  # the child has only the forking thread: nobody is inside SQLite here


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                        after_in_child=_after_fork_in_child)
