"""Result lists that look good in a notebook: :class:`Rows` is a ``list`` of row dicts whose
``_repr_html_`` draws a table in Jupyter/IPython, with an optional :meth:`Rows.to_pandas`."""

from __future__ import annotations

import datetime as _dt
import html
from typing import Any, Dict, Iterable, List, Mapping

__all__ = ["Rows"]

#: Rows drawn in a table; the rest are counted below it (a notebook must not freeze on 100 000).
MAX_HTML_ROWS = 50
_MAX_CELL = 120


class Rows(List[Dict[str, Any]]):
    """A plain ``list`` of row dicts (``==``, slicing, JSON all as for a list) that Jupyter shows
    as a table. Wrap any rows to display them, e.g. in a subscription callback:
    ``out.update(Rows(rows))`` with an ``IPython.display`` handle."""

    def _repr_html_(self) -> str:
        columns = _columns(self)
        head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(_cell(row.get(c)))}</td>" for c in columns) + "</tr>"
            for row in self[:MAX_HTML_ROWS] if isinstance(row, Mapping)
        )
        more = len(self) - MAX_HTML_ROWS
        foot = f"<p>… {more} more rows</p>" if more > 0 else ""
        count = f"<p>{len(self)} row{'' if len(self) == 1 else 's'}</p>"
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{foot}{count}"

    def to_pandas(self) -> Any:
        """A ``pandas.DataFrame`` of the rows, one column per attribute (``pip install
        'triplit_sync[pandas]'``; pandas is never required otherwise)."""
        try:
            import pandas
        except ImportError as exc:
            raise ImportError("to_pandas() needs pandas: pip install 'triplit_sync[pandas]' "
                              "(or pip install pandas)") from exc
        return pandas.DataFrame([dict(row) for row in self], columns=_columns(self))


def _columns(rows: Iterable[Any]) -> List[str]:
    seen: Dict[str, None] = {}
    for row in rows:
        if isinstance(row, Mapping):
            for key in row:
                seen.setdefault(str(key), None)
    names = list(seen)
    return (["id"] + [n for n in names if n != "id"]) if "id" in seen else names


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, _dt.datetime):
        text = value.isoformat(sep=" ", timespec="milliseconds")
    elif isinstance(value, (set, frozenset)):
        text = "{" + ", ".join(sorted(map(str, value))) + "}"
    else:
        text = str(value)
    return text if len(text) <= _MAX_CELL else text[:_MAX_CELL - 1] + "…"
