"""Schemas: the ``S`` builder, the schema model and its JSON form, value types, and the codecs that
turn Python values into what the server stores and back (dates, sets, records, ids).

May import :mod:`triplit_sync._util` and :mod:`triplit_sync.errors`; knows nothing of queries, the
wire or the client.
"""

from .model import *  # noqa: F401,F403  (the public names are model's)
from .model import __all__ as __all__
