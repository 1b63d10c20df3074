"""Query time: the Searcher, search modes, the SIFT rerank stage and fusion."""

from fmsearch.search.mode import SearchMode
from fmsearch.search.rerank import RerankConfig
from fmsearch.search.searcher import Hit, Searcher

__all__ = ["Hit", "RerankConfig", "SearchMode", "Searcher"]
