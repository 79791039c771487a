"""The store's index: each finished run's entry, and the Parquet segments that listings compact.

``schema`` owns the rows and the layout, ``write`` a run's entry and a
compaction's lifecycle, ``compact`` the merge into a new segment, ``read`` the
segments and entries, ``operations`` the operations table of many runs
(docs/run-store.md#the-index).
"""
