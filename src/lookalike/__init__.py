"""lookalike: deep-learning image search. Find the images that look alike.

Names are imported on first use: decode worker processes import ``lookalike.*`` modules and
must not pay for PyTorch (seconds and hundreds of MB each) just by touching the package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lookalike.errors import LookalikeError
from lookalike.lazy import lazy_attributes

if TYPE_CHECKING:
    from lookalike.index import AddReport, Index, IndexInfo
    from lookalike.search.query import Hit, SearchResult

__all__ = ["AddReport", "Hit", "Index", "IndexInfo", "LookalikeError", "SearchResult"]
__version__ = "0.1.0"

__getattr__ = lazy_attributes(
    __name__,
    {
        "AddReport": "lookalike.index",
        "Index": "lookalike.index",
        "IndexInfo": "lookalike.index",
        "Hit": "lookalike.search.query",
        "SearchResult": "lookalike.search.query",
    },
)
