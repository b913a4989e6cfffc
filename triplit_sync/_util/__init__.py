"""Shared utilities with no knowledge of Triplit: JSON, URLs, timers, callbacks, timeouts, redaction,
safe files and locks, fork safety, the JS-compatible hash and number printing, common type aliases.

Owns nothing stateful. May import only :mod:`triplit_sync.errors` and the standard library (plus
optional orjson); every other room may import it.
"""
