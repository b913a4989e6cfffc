"""examples/notebook.ipynb runs with nbclient, twice (as a user re-running it would), against a real
server: no cell fails, results show as HTML tables, and the live-results pattern prints nothing into
other cells. A third pass re-runs every cell in the same kernel (the cells replace their client and
subscription instead of clashing with them)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

from triplit_sync import DEMO_SCHEMA
from triplit_sync.testing import TriplitTestServer

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK = Path(__file__).resolve().parent.parent / "examples" / "notebook.ipynb"


@pytest.fixture(scope="module")
def server() -> Iterator[TriplitTestServer]:
    with TriplitTestServer(DEMO_SCHEMA) as server:
        yield server


def _kernel_env(server: TriplitTestServer, tmp_path: Path) -> Dict[str, str]:
    env = dict(os.environ, TRIPLIT_URL=server.url, TRIPLIT_TOKEN=server.user_token("dev-user"),
               XDG_DATA_HOME=str(tmp_path / "user-data"))
    env.pop("PYTEST_ADDOPTS", None)
    return env


def _outputs(nb: Any) -> List[Dict[str, Any]]:
    return [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]


def _check(nb: Any) -> None:
    outputs = _outputs(nb)
    assert not [o for o in outputs if o.output_type == "error"], outputs
    tables = [o for o in outputs if "text/html" in o.get("data", {}) and "<table>" in o["data"]["text/html"]]
    assert tables, outputs
    assert any("buy milk" in o["data"]["text/html"] for o in tables)
    # The live query redraws its own display; nothing of it is printed as a stream anywhere.
    assert not [o for o in outputs if o.output_type == "stream" and "<table>" in o.get("text", "")]
    assert any(o.output_type == "display_data" for o in outputs)  # the live table's own display


def test_the_notebook_runs_twice_and_shows_tables(server: TriplitTestServer, tmp_path: Path) -> None:
    env = _kernel_env(server, tmp_path)
    for _ in range(2):  # the second run starts on the first one's local database and server data
        nb = nbformat.read(str(NOTEBOOK), as_version=4)
        nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                                resources={"metadata": {"path": str(tmp_path)}}).execute(env=env)
        _check(nb)


def test_every_cell_may_run_again_in_the_same_kernel(server: TriplitTestServer, tmp_path: Path) -> None:
    nb = nbformat.read(str(NOTEBOOK), as_version=4)
    client = nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    with client.setup_kernel(env=_kernel_env(server, tmp_path)):
        for _ in range(2):
            for index, cell in enumerate(nb.cells):
                client.execute_cell(cell, index)
    _check(nb)
