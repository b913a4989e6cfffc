"""Schemas: the ``S`` builder, the schema model and its JSON form, value types, and the codecs that
turn Python values into what the server stores and back (dates, sets, records, ids); and the
demo schema `triplit-sync dev` serves.

May import :mod:`triplit_sync._util` and :mod:`triplit_sync.errors`; knows nothing of queries, the
wire or the client.
"""

from . import model
from ._demo import DEMO_SCHEMA
from .model import *  # noqa: F401,F403  (the public names are model's)

__all__ = [*model.__all__, "DEMO_SCHEMA"]
