"""The fault suite in quick mode (tests/faults/README.md); ``python -m tests.faults --full`` runs the full counts.

Two scenarios fail on the code of this commit for reasons issue 12 lists and other branches
fix: hostile frames kill the reader (item 2) and silent stalls go unnoticed (item 3). They are
marked xfail (not strict, so that a fixed library shows XPASS); remove the marks when those
fixes are merged.
"""

from __future__ import annotations

import pytest

from tests.faults.common import Result
from tests.faults.runner import run_one

_ITEM2 = "issue 12 item 2: a hostile frame (deep nesting, wrong types) kills the reader or lands in the cache"
_ITEM3 = "issue 12 item 3: no deadline on PONG or CHANGES_ACK, so a silent stall is never noticed"


def _assert_passed(res: Result) -> None:
    print(res.report())
    assert res.passed, res.report()


def test_kill9_durable_client() -> None:
    _assert_passed(run_one("kill9", quick=True))


def test_server_restarts_and_mid_frame_cuts() -> None:
    _assert_passed(run_one("restarts", quick=True, stalls=0))


@pytest.mark.xfail(reason=_ITEM3, strict=False)
def test_silent_stall_noticed() -> None:
    _assert_passed(run_one("restarts", quick=True, restarts=0, cuts=0, stalls=1))


@pytest.mark.xfail(reason=_ITEM2, strict=False)
def test_hostile_frames() -> None:
    _assert_passed(run_one("hostile", quick=True))


def test_threads_mixed_calls() -> None:
    _assert_passed(run_one("threads", quick=True))
