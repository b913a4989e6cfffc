"""Queries: a fluent builder producing CollectionQuery JSON, and a local evaluator with the server's semantics."""

from __future__ import annotations

from ._globals import bind_global_variables, normalize_global_variables
from ._semantics import MISSING, get_path, order_key, to_filter_value
from .builder import Query, and_, exists, or_, validate
from .evaluate import (
    CompiledQuery,
    Source,
    compile_query,
    evaluate,
    evaluate_with_dependencies,
    result_dependencies,
)
from .prepare import prepare_query

__all__ = [
    "Query",
    "and_",
    "or_",
    "exists",
    "validate",
    "CompiledQuery",
    "Source",
    "compile_query",
    "evaluate",
    "evaluate_with_dependencies",
    "prepare_query",
    "result_dependencies",
    # for the rooms above: the JS value semantics queries use, and $global binding
    "MISSING",
    "get_path",
    "order_key",
    "to_filter_value",
    "bind_global_variables",
    "normalize_global_variables",
]
