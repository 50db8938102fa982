"""Golden digests: the numeric components the stages compute with (`components`) and the digests every
machine that reproduces the sample's dvc.lock computes of them under `portable` (`recorded`). Read by
`sgpose doctor` and the suite's cross-processor tests (docs/reproducibility.md)."""
