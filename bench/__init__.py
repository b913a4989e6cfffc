"""Benchmarks of triplit_sync against the official JS client; run with ``python -m bench``."""
