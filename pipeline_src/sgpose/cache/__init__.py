"""The HDF5 cache of the frozen backbone's outputs: `format` (the one table of cached datasets, dtypes,
compression, attributes), `writer` (atomic writes), `shards` (shard files, fingerprints, the manifest
of virtual datasets) and `reader` (`open_cache`, `load_cache`, `CacheBatches`).

No re-exports here: a module imports the one it uses, so its code dependencies (the DAG's) stay precise.
"""
