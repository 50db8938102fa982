"""The GPU check's table (benchmarks/gpu_check.py): every figure before (the issue-26 H200 run), now, and
against its target, with a verdict.

BEFORE is the check's run on one H200 (torch 2.11.0+cu130, 2026-12-04, main at 11a402e), as issue 26
quotes it; TARGETS are that issue's.
"""

from __future__ import annotations

from typing import Any, Callable

BEFORE = {
    "cuda_tests": "7 passed", "r50": 12174, "hrnet_w32": 2684, "static_64": 0.999, "static_256": 0.911,
    "kernels": 292, "copies": 92, "copy_share": "~2/3 (copy_ 1,586 us; convs 755 us)", "graph": "FAILED (host copy)",
    "compile": "FAILED (len())", "nchw": 0.63, "train": 264.8, "hours": 20.4, "reader": 860, "reader_first": 433,
    "step": 1676, "train_over_min": 264.8 / 860, "cache_over_forward": 0.0126, "cache_stage": 35.9, "forward": 2835,
    "loading": 402, "writer": 132, "ddp": 3.8e-5, "ap_difference": 0.0,
}
TARGETS = {"static_ratio": 0.35, "copy_share": 0.10, "train_samples_per_s": 900.0, "hours": 6.0, "reader": 2000.0,
           "train_over_min": 0.8, "cache_over_forward": 0.5, "ap_difference": 0.01}
COCO_TRAIN = 149_813  # full COCO train2017 person instances (docs/method.md §4: 130 epochs)
PAPER_EPOCHS = 130

Row = tuple[str, str, str, str, str]  # what, before, now, target, verdict


def get(report: dict, path: str) -> Any:
    """report["a"]["b"]... for path "a.b...": None where absent, "FAILED (why)" or "skipped (why)" where a
    section or part on the way failed or was skipped."""
    node: Any = report
    for i, key in enumerate(path.split(".")):
        if i and isinstance(node, dict) and ("error" in node or "skipped" in node):
            why = str(node.get("error") or node.get("skipped")).splitlines()[0][:50]
            return f"FAILED ({why})" if "error" in node else f"skipped ({why})"
        node = node.get(key) if isinstance(node, dict) else None
    return node


def _fmt(value: Any, fmt: str = "{:.3g}") -> str:
    if isinstance(value, bool) or value is None:
        return "-" if value is None else str(value)
    return fmt.format(value) if isinstance(value, (int, float)) else str(value)


def row(what: str, before: Any, now: Any, target: str = "-", ok: Callable[[float], bool] | None = None,
        fmt: str = "{:.3g}") -> Row:
    verdict = "-" if ok is None else ("?" if not isinstance(now, (int, float)) else ("met" if ok(now) else "MISSED"))
    return what, _fmt(before, fmt), _fmt(now, fmt), target, verdict


def refiner_rows(r: dict) -> list[Row]:
    t = TARGETS["static_ratio"]
    lv = lambda k: get(r, f"refiner_levers.{k}.ratio")  # noqa: E731
    prof = "refiner_levers.profile"
    small, big = (sorted((k for k in r.get("refiner_cost", {}) if k.startswith("batch_")), key=lambda k: int(k[6:]))
                  + ["batch_64", "batch_256"])[:2]
    return [
        row(f"refiner static reading / R50 forward, {small.replace('_', ' ')}", BEFORE["static_64"],
            get(r, f"refiner_cost.{small}.static_ratio"), f"<= {t}", lambda v: v <= t),
        row(f"  the same, {big.replace('_', ' ')}", BEFORE["static_256"], get(r, f"refiner_cost.{big}.static_ratio"),
            f"<= {t}", lambda v: v <= t),
        row("  as before (autocast, eager), same batch", BEFORE["static_64"], get(r, f"refiner_cost.{small}.before_ratio")),
        row("  kernels per reading (native eager; graphs launch them as one)", BEFORE["kernels"],
            get(r, f"{prof}.native.kernels_per_reading"), fmt="{:.0f}"),
        row("  copies per reading (aten::copy_)", BEFORE["copies"], get(r, f"{prof}.native.copies_per_reading"),
            fmt="{:.0f}"),
        row("  copies' share of the reading's device time", BEFORE["copy_share"], get(r, f"{prof}.native.copy_share_of_time"),
            f"< {TARGETS['copy_share']}", lambda v: v < TARGETS["copy_share"]),
        row("  the same, as before (autocast)", BEFORE["copy_share"], get(r, f"{prof}.autocast.copy_share_of_time")),
        row("lever autocast (before): reading / R50", BEFORE["static_64"], lv("autocast")),
        row("lever native (compute dtype, no autocast)", "-", lv("native")),
        row("lever native, NCHW", BEFORE["nchw"], lv("native_nchw")),
        row("lever CUDA graph (stages' default)", BEFORE["graph"], lv("graph"), "runs", lambda v: v > 0),
        row("lever CUDA graph, NCHW", "-", lv("graph_nchw")),
        row("lever torch.compile", BEFORE["compile"], lv("compile"), "runs", lambda v: v > 0),
        row("lever torch.compile + CUDA graph", "-", lv("compile_graph"), f"<= {t}", lambda v: v <= t),
        row("  reading's parts, ms: P_pred / guidance / UNet", "-", " / ".join(
            _fmt(get(r, f"{prof}.parts.{k}"), "{:.2f}") for k in ("p_pred_ms", "guidance_ms", "unet_ms"))),
    ]


def train_rows(r: dict, store: str) -> list[Row]:
    s = f"train.{store}"
    t = TARGETS
    return [
        row(f"refiner training ({store}), samples/s", BEFORE["train"], get(r, f"{s}.samples_per_s"),
            f">= {t['train_samples_per_s']:g}", lambda v: v >= t["train_samples_per_s"], "{:.1f}"),
        row("  hours for 130 full COCO epochs", BEFORE["hours"], get(r, f"{s}.hours_for_130_epochs"), f"< {t['hours']:g}",
            lambda v: v < t["hours"], "{:.1f}"),
        row("  waiting for batches, share of the epoch", "-", get(r, f"{s}.waiting_share"), fmt="{:.2f}"),
        row("  cache reader alone (the stage's workers), samples/s", BEFORE["reader"], get(r, f"{s}.reader_samples_per_s"),
            f">= {t['reader']:g}", lambda v: v >= t["reader"], "{:.1f}"),
        row("  the same, first epoch (workers starting)", BEFORE["reader_first"],
            get(r, f"{s}.reader_first_epoch_samples_per_s"), fmt="{:.1f}"),
        row("  the same, one process, chunks decoded on its threads", "-", get(r, f"{s}.reader_threads_samples_per_s"),
            fmt="{:.1f}"),
        row("  training step alone, samples/s", BEFORE["step"], get(r, f"{s}.step_samples_per_s"), fmt="{:.1f}"),
        row("  training / min(reader, step)", BEFORE["train_over_min"], get(r, f"{s}.train_over_min"),
            f">= {t['train_over_min']}", lambda v: v >= t["train_over_min"], "{:.2f}"),
        row("  stored MB per sample", "2.27 (head)", get(r, f"{s}.stored_mb_per_sample"), fmt="{:.2f}"),
    ]


def cache_rows(r: dict, store: str) -> list[Row]:
    s = f"cache_stage.{store}"
    t = TARGETS["cache_over_forward"]
    parts = get(r, f"{s}.parts_seconds")
    return [
        row(f"cache stage ({store}) / pure forward", BEFORE["cache_over_forward"], get(r, f"{s}.stage_over_forward"),
            f">= {t}", lambda v: v >= t),
        row("  cache stage, samples/s", BEFORE["cache_stage"], get(r, f"{s}.stage_samples_per_s"), fmt="{:.1f}"),
        row("  pure forward (no flip view), samples/s", f"{BEFORE['forward']} (flip)", get(r, f"{s}.forward_samples_per_s"),
            fmt="{:.1f}"),
        row("  crop loading alone, samples/s", BEFORE["loading"], get(r, f"{s}.loading_samples_per_s"), fmt="{:.1f}"),
        row("  stage's seconds: crops / device / writer", "-", " / ".join(_fmt((parts or {}).get(k), "{:.2f}")
                                                                       for k in ("crops", "device", "writer"))
            if isinstance(parts, dict) else parts),
    ]


def table(r: dict) -> list[Row]:
    """The printed rows, in the issue's order."""
    return [
        row("CUDA tests (pytest -m cuda)", BEFORE["cuda_tests"], get(r, "cuda_tests.summary"), "all pass", None),
        row("  failed", 0, get(r, "cuda_tests.failures"), "0", lambda v: v == 0, "{:.0f}"),
        row("R50 forward, images/s", BEFORE["r50"], get(r, "backbones.r50_images_per_s"), fmt="{:.0f}"),
        row("HRNet-W32 forward, images/s", BEFORE["hrnet_w32"], get(r, "backbones.hrnet_w32_images_per_s"), fmt="{:.0f}"),
        *refiner_rows(r), *train_rows(r, "trunk"), *train_rows(r, "head"), *cache_rows(r, "trunk"),
        *cache_rows(r, "head"),
        row("  cache writer alone (head, every core), samples/s", BEFORE["writer"],
            get(r, "cache_stage.writer_encoders_samples_per_s"), fmt="{:.1f}"),
        row("DDP via torchrun, 1 process: max |w - w_single|", BEFORE["ddp"], get(r, "ddp.max_weight_difference"),
            f"<= {get(r, 'ddp.bound')}", lambda v: isinstance(get(r, "ddp.bound"), float) and v <= get(r, "ddp.bound"),
            "{:.2e}"),
        row("sample AP, device vs CPU: max |dAP|", BEFORE["ap_difference"], get(r, "sample.ap_difference"),
            f"<= {TARGETS['ap_difference']}", lambda v: v <= TARGETS["ap_difference"], "{:.4f}"),
        row("  sample AP (device; ours val, val_det)", "-", get(r, "sample.ap.device.ours"), "> 0 (informative)"),
    ]


def print_table(rows: list[Row], header: str) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    names = ("what", "before", "now", "target", "verdict")
    print(f"\n{header}")
    for r in [names, *rows]:
        print(" | ".join(f"{c:{w}s}" if i == 0 else f"{c:>{w}s}" for i, (c, w) in enumerate(zip(r, widths))))
