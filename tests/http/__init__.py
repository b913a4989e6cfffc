"""Tests of the http room."""
