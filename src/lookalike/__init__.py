"""lookalike: deep-learning image search. Find the images that look alike."""

from lookalike.errors import LookalikeError
from lookalike.index import AddReport, Index, IndexInfo
from lookalike.search.query import Hit, SearchResult

__all__ = ["AddReport", "Hit", "Index", "IndexInfo", "LookalikeError", "SearchResult"]
__version__ = "0.1.0"
