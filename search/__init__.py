"""Query time: the Searcher, queries, search modes, the SIFT rerank stage and fusion."""

from fmsearch.search.mode import SearchMode
from fmsearch.search.query import Query
from fmsearch.search.rerank import RerankConfig
from fmsearch.search.searcher import Hit, Searcher

__all__ = ["Hit", "Query", "RerankConfig", "SearchMode", "Searcher"]
