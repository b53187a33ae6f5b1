"""The results catalogue: tables, files, partitions, writing, compaction, the codec.

- ``catalogue`` (was ``catalogue.py``)
- ``tables`` (was ``results.py``)
- ``storage`` (was ``storage.py``)
- ``codec`` (was ``store.py``)
- ``partitions`` (was ``partitions.py``)
- ``write`` (was ``write.py``)
- ``write_error`` (was ``write_error.py``)
- ``compaction`` (was ``compaction.py``)

Nothing is imported here: import the module you need.
"""
