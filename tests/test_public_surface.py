"""The public surface of triplit_sync is pinned in tests/fixtures/public_surface.txt: ``__all__``,
the signatures of the client's, the HTTP client's and the testing module's public callables, the
bases of the exported errors, the values of the exported enums and Literal aliases.

A change there is a change for every user, so it must be deliberate: when it is, regenerate the file
and say what changed in CHANGELOG.md::

    TRIPLIT_SYNC_UPDATE_SURFACE=1 .venv/bin/python -m pytest -q tests/test_public_surface.py

Module paths are left out on purpose: moving a class between private modules is not a change of
the surface, renaming it or changing its signature is.
"""

from __future__ import annotations

import difflib
import enum
import inspect
import os
import re
import typing
from pathlib import Path
from typing import Any, Iterator, List

import triplit_sync
import triplit_sync.testing

EXPECTED = Path(__file__).parent / "fixtures" / "public_surface.txt"
UPDATE_VAR = "TRIPLIT_SYNC_UPDATE_SURFACE"

# Classes whose public methods and properties are pinned one by one, besides the constructor.
WITH_METHODS = ("TriplitClient", "HttpClient")
# Other exported classes users build themselves: their constructors are pinned. The rest (Subscription,
# RowsStream, Transaction, SessionInfo) are handed out by the client, so only their names are.
USER_BUILT = ("Query", "Schema", "Collection", "Relation", "S")

HEADER = f"""\
# The public surface of triplit_sync, checked by tests/test_public_surface.py.
# Do not edit by hand: after a deliberate change of the public API run
#   {UPDATE_VAR}=1 .venv/bin/python -m pytest -q tests/test_public_surface.py
# and add a line to CHANGELOG.md saying what changed for users.
"""


def _signature(obj: Any) -> str:
    try:
        text = str(inspect.signature(obj))
    except (TypeError, ValueError):  # builtins without a signature (an error's inherited __init__)
        text = "(*args)"
    return re.sub(r" at 0x[0-9a-fA-F]+", "", text)  # object() sentinels as defaults


def _members(cls: type) -> Iterator[str]:
    for name in sorted(dir(cls)):
        if name.startswith("_"):
            continue
        attr = inspect.getattr_static(cls, name)
        if isinstance(attr, property):
            yield f"  .{name}  (property{'' if attr.fset is None else ', settable'})"
        elif isinstance(attr, (staticmethod, classmethod)):
            kind = type(attr).__name__
            yield f"  .{name}{_signature(getattr(cls, name))}  ({kind})"
        elif inspect.isfunction(attr):
            yield f"  .{name}{_signature(attr)}"
        else:
            yield f"  .{name}  (attribute)"


def _describe(name: str, obj: Any, with_methods: bool, pin_constructor: bool = True) -> List[str]:
    if isinstance(obj, type) and issubclass(obj, BaseException):
        bases = ", ".join(b.__name__ for b in obj.__bases__)
        return [f"{name}({bases})  error{_signature(obj)}"]
    if isinstance(obj, type) and issubclass(obj, enum.Enum):
        return [f"{name}  enum: " + ", ".join(f"{m.name}={m.value!r}" for m in obj)]
    if isinstance(obj, type) and issubclass(obj, dict) and hasattr(obj, "__total__"):  # a TypedDict
        keys = ", ".join(f"{k}: {getattr(v, '__forward_arg__', v)}" for k, v in obj.__annotations__.items())
        return [f"{name}  TypedDict: {keys}"]
    if typing.get_origin(obj) is typing.Literal:
        return [f"{name}  Literal: " + ", ".join(repr(a) for a in typing.get_args(obj))]
    if isinstance(obj, type):
        lines = [f"{name}{_signature(obj)}" if pin_constructor else f"{name}  class"]
        if with_methods:
            lines += _members(obj)
        return lines
    if callable(obj):
        return [f"{name}{_signature(obj)}"]
    return [f"{name}  {type(obj).__name__}"]  # __version__: its value changes every release


def surface() -> str:
    """Today's public surface, as the text the expected file holds."""
    lines = [HEADER, "[triplit_sync.__all__]"]
    lines += sorted(triplit_sync.__all__)
    lines += ["", "[triplit_sync]"]
    for name in sorted(triplit_sync.__all__):
        lines += _describe(name, getattr(triplit_sync, name), name in WITH_METHODS,
                           pin_constructor=name in WITH_METHODS or name in USER_BUILT)
    testing_all = sorted(triplit_sync.testing.__all__)
    lines += ["", "[triplit_sync.testing.__all__]"] + testing_all + ["", "[triplit_sync.testing]"]
    for name in testing_all:
        lines += _describe(name, getattr(triplit_sync.testing, name), with_methods=True)
    return "\n".join(lines) + "\n"


def test_public_surface_is_unchanged() -> None:
    actual = surface()
    if os.environ.get(UPDATE_VAR):
        EXPECTED.write_text(actual, encoding="utf-8")
        return
    expected = EXPECTED.read_text(encoding="utf-8") if EXPECTED.exists() else ""
    if actual != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), actual.splitlines(True),
                                            "expected (tests/fixtures/public_surface.txt)", "actual"))
        raise AssertionError(
            "The public surface of triplit_sync changed. If the change is deliberate, update the expected "
            f"file with `{UPDATE_VAR}=1 .venv/bin/python -m pytest -q tests/test_public_surface.py` and "
            f"add a CHANGELOG.md line saying what changed for users; if not, undo it.\n{diff}")


def test_all_names_are_importable_and_unique() -> None:
    names = list(triplit_sync.__all__)
    assert len(names) == len(set(names)), "triplit_sync.__all__ lists a name twice"
    missing = [n for n in names if not hasattr(triplit_sync, n)]
    assert not missing, f"triplit_sync.__all__ lists names the package does not define: {missing}"


def test_every_public_method_of_the_clients_has_a_docstring() -> None:
    from triplit_sync import HttpClient, TriplitClient

    missing = [f"{cls.__name__}.{name}" for cls in (TriplitClient, HttpClient) for name in dir(cls)
               if not name.startswith("_") and callable(getattr(cls, name)) and not getattr(cls, name).__doc__]
    assert not missing, f"public methods without a docstring: {missing}"
