"""Queries: a fluent builder producing CollectionQuery JSON, and a local evaluator with the server's semantics."""

from __future__ import annotations

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
]
