"""The fault suite in quick mode (tests/faults/README.md); ``python -m tests.faults --full``
runs the full counts. The stall and hostile-frame scenarios failed before issue 12's items 2
and 3 were built (see tests/faults/README.md, "Before the fixes")."""

from __future__ import annotations

import pytest

from tests.faults.common import Result
from tests.faults.runner import run_one

def _assert_passed(res: Result) -> None:
    print(res.report())
    assert res.passed, res.report()


@pytest.mark.server
def test_kill9_durable_client() -> None:
    _assert_passed(run_one("kill9", quick=True))


@pytest.mark.server
def test_server_restarts_and_mid_frame_cuts() -> None:
    _assert_passed(run_one("restarts", quick=True, stalls=0))


@pytest.mark.server
def test_silent_stall_noticed() -> None:
    _assert_passed(run_one("restarts", quick=True, restarts=0, cuts=0, stalls=1))


def test_hostile_frames() -> None:
    _assert_passed(run_one("hostile", quick=True))


@pytest.mark.server
def test_threads_mixed_calls() -> None:
    _assert_passed(run_one("threads", quick=True))
