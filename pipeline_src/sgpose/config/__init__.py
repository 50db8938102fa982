"""Load and validate `params.yaml`; the one place that knows parameter names and output paths.

`schema` holds the sections of the file (`ParamsFile`) and the split names, `selection` reads a file
with overrides and selects one backbone's view (`Params`, `load_params`), `paths` the files of a
selection (`Paths`: the same names dvc.yaml and the Snakefile use). The public names are re-exported
here so that `from sgpose.config import X` works; the package's own modules import the precise one.
"""

from sgpose.config.paths import Paths
from sgpose.config.schema import (
                                  DET_SPLIT,
                                  SPLITS,
                                  AblationParams,
                                  AugmentParams,
                                  BackboneParams,
                                  CacheParams,
                                  ComputeParams,
                                  DataParams,
                                  DatasetParams,
                                  EvalSplit,
                                  EvaluateParams,
                                  GuidanceParams,
                                  InferParams,
                                  ParamsFile,
                                  PrepareParams,
                                  RefinerParams,
                                  ReportParams,
                                  Split,
                                  TrainBackboneParams,
                                  TrainRefinerParams,
                                  gt_split,
)
from sgpose.config.selection import Params, ParamsError, apply_override, load_params, read_params_file

__all__ = ["DET_SPLIT", "SPLITS", "AblationParams", "AugmentParams", "BackboneParams", "CacheParams",
           "ComputeParams", "DataParams", "DatasetParams", "EvalSplit", "EvaluateParams", "GuidanceParams",
           "InferParams", "Params", "ParamsError", "ParamsFile", "Paths", "PrepareParams", "RefinerParams",
           "ReportParams", "Split", "TrainBackboneParams", "TrainRefinerParams", "apply_override", "gt_split",
           "load_params", "read_params_file"]
