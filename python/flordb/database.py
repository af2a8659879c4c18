"""``flordb.database``: flordb 4.0.1's module of the query cache; here a view of the
engine's calls (the cache is derived from the run files and rebuilds itself)."""

from ._frames import dataframe, io, query, runs, unpack

__all__ = ["dataframe", "io", "query", "runs", "unpack"]
