"""Tests of the transport room."""
