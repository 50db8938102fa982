"""The paper's reported numbers (docs/method.md §6), the one place they are typed.

Everything here is QUOTED from the paper, never computed by this pipeline; tables print it
beside this run's numbers in columns marked "paper".
"""

from __future__ import annotations

from sgpose.core.modes import Schedule

SOURCE = "quoted from the paper (docs/method.md §6), COCO val2017 unless noted"

# Table 1 / Fig. 4: ablation on SimpleBaseline-R50, GT boxes. variant -> (description, AP).
TABLE1_BACKBONE = "SimpleBaseline-R50"
TABLE1: dict[str, tuple[str, float]] = {
    "baseline": ("backbone heatmaps, no refinement", 72.3),
    "A1": ("UNet on features only", 72.8),
    "A2": ("+ static predicted heatmap", 73.0),
    "A3": ("+ interpolated heatmap sequence (no graduated fusion)", 73.2),
    "A4": ("graduated sequence from ground truth in training, prediction at test", 73.3),
    "ours": ("graduated structure guidance (full method)", 73.7),
}

# Table 2: baseline AP -> ours AP per backbone.
TABLE2: dict[str, tuple[float, float]] = {
    "SimpleBaseline-R50": (72.4, 73.7),
    "SimpleBaseline-R101": (73.5, 74.3),
    "SimpleBaseline-R152": (74.2, 74.6),
    "HRNet-W32": (75.6, 76.3),
    "HRNet-W48": (77.1, 77.6),
}

# Fig. 5: number of interpolated poses S -> AP; only these points are stated in the text.
FIG5_S_SWEEP: dict[int, float] = {3: 73.7, 5: 73.7, 8: 73.3}

# Fig. 6: interpolation schedule -> AP.
FIG6_SCHEDULE: dict[Schedule, float] = {Schedule.COSINE: 73.7, Schedule.LINEAR: 73.4}

# Table 3 (CrowdPose val, GT boxes): method -> AP; `ours` rows are the paper's own.
TABLE3_CROWDPOSE: dict[str, float] = {
    "HigherHRNet": 65.9, "CrowdPose baseline": 66.0, "DEKR": 68.0, "HRNeXt": 70.4, "OPEC-Net": 70.6,
    "I2R-Net": 72.3, "DGN": 72.4, "ED-Pose": 73.1, "RTMO-L": 73.2, "TransPose-H/A6": 76.3,
    "ours (R152)": 74.8, "ours (HRNet-W48)": 77.6,
}

# Table 4 (COCO val, 256x192, detection boxes): method -> AP.
TABLE4_COCO_DET: dict[str, float] = {
    "SimpleBaseline-R152": 73.5, "RTMPose-m": 73.6, "HRNet-W32": 74.4, "RTMPose-l": 74.8,
    "HRNet-W48": 75.1, "TransPose-H/A4": 75.3, "HRFormer-B": 75.6, "TransPose-H/A6": 75.8,
    "ViTPose-B": 75.8, "ours (R152)": 74.2, "ours (HRNet-W48)": 75.6,
}

TABLES: dict[str, dict] = {
    "table1": TABLE1, "table2": TABLE2, "fig5": FIG5_S_SWEEP, "fig6": FIG6_SCHEDULE,
    "table3": TABLE3_CROWDPOSE, "table4": TABLE4_COCO_DET,
}


def paper_ap(variant: str) -> tuple[str, float | None]:
    """(description, the paper's AP) for a variant name, sweeps included (ours_S5, ours_linear).

    Unknown variants, and sweep points the paper does not state, give (description, None).
    """
    if variant in TABLE1:
        return TABLE1[variant]
    if variant.startswith("ours_S") and variant[6:].isdigit():
        S = int(variant[6:])
        return f"ours with S = {S} (Fig. 5)", FIG5_S_SWEEP.get(S)
    if variant.startswith("ours_") and variant[5:] in FIG6_SCHEDULE:
        return f"ours with the {variant[5:]} schedule (Fig. 6)", FIG6_SCHEDULE[variant[5:]]
    return "", None
