"""Shared test fixtures: the real-data mirror, instance tables built by the real `prepare` code, and a
local HTTP server with Range support (for the download tests of data files and checkpoints)."""

from __future__ import annotations

import http.server
import os
import shutil
import subprocess
import threading
from pathlib import Path

from sgpose.runtime import numerics

# the tests run the stages in this process too: the default `portable` numerics (docs/reproducibility.md)
# in force before torch, numpy and OpenCV start, as `sgpose <stage>` sets them in a process of its own
numerics.set_environment("portable")

import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402
from sgpose.config.schema import ComputeParams  # noqa: E402
from sgpose.core.keypoints import COCO  # noqa: E402
from sgpose.data.coco import instances_from_gt, load_coco  # noqa: E402

numerics.apply(ComputeParams())  # oneDNN off, OpenCV's baseline code, 2 torch threads, whatever test ran first

REPO = Path(__file__).resolve().parents[1]
MIRROR = Path(os.environ.get("SGPOSE_MIRROR") or REPO.parent / "shared" / "data").resolve()
# absolute for every process the tests start: stages run in copies of the project elsewhere (tmp dirs,
# SLURM jobs), where a relative mirror such as CI's ../shared/data names nothing
os.environ["SGPOSE_MIRROR"] = str(MIRROR)
FIXTURE_COCO = MIRROR / "fixtures" / "coco"


def copy_project(dest: Path) -> Path:
    """The project's files as git sees them (tracked, and untracked but not ignored) copied into
    `dest`, made a fresh git repository: what a clone of this working tree would hold."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           check=True, capture_output=True, text=True).stdout.split("\0")
    for rel in filter(None, files):
        if (REPO / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, dest / rel)
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    return dest


def require(path: Path) -> Path:
    """A mirror file the test needs: skipped outside CI when absent, a failure in CI (CI=true)."""
    if not path.exists():
        message = f"{path} not available (set SGPOSE_MIRROR to the shared data mirror)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def fixture_instances(input_size: tuple[int, int], coco_json: Path = FIXTURE_COCO / "test_coco.json") -> pd.DataFrame:
    """The instance table of every labelled person of a COCO json, as `sgpose prepare` builds it."""
    coco = load_coco(require(coco_json), COCO)
    return instances_from_gt(coco, [im["id"] for im in coco["images"]], COCO, aspect=input_size[1] / input_size[0])


def as_trained(model: torch.nn.Module, std: float = 0.05, seed: int = 0) -> torch.nn.Module:
    """`model` with its all-zero parameters (the UNet's zero-initialised convs) drawn at random, as
    training leaves them: a fresh UNet outputs zeros whatever its inputs, so tests of what each input
    changes need one whose output depends on them."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if not p.any():
                p.copy_(torch.randn(p.shape, generator=gen) * std)
    return model


def params_tree(dataset: str = "fx", backbone: str = "tiny", *, layout: str = "coco", data: dict | None = None,
                prepare: dict | None = None, backbone_params: dict | None = None, evals=("val",),
                ablation: tuple[str, ...] = (), **sections) -> dict:
    """A params.yaml tree with one dataset and one (primary) backbone in the real schema; the
    dataset defaults to the mirror's COCO fixture, the backbone to a SimpleBaseline-R18 at 64x64."""
    data = data or {"manifest": "m.tsv", "raw_dir": "raw", "images_dir": str(FIXTURE_COCO),
                    "annotations": str(FIXTURE_COCO / "test_coco.json")}
    bp = {"depth": 18, "deconv_channels": 16, "input_size": [64, 64], "heatmap_size": [16, 16]} | (backbone_params or {})
    h, w = bp["input_size"]
    return {"datasets": {dataset: {"layout": layout, "data": data,
                                   "prepare": {"aspect_ratio": w / h} | (prepare or {})}},
            "backbones": {backbone: {"dataset": dataset} | bp}, "evals": {backbone: list(evals)},
            "ablation": {"dataset": dataset, "backbone": backbone, "variants": list(ablation)}, **sections}


def write_params(root: Path, tree: dict) -> Path:
    """root/params.yaml from a tree (`params_tree`)."""
    (root / "params.yaml").write_text(yaml.safe_dump(tree, sort_keys=False))
    return root / "params.yaml"


def write_instances(root: Path, dataset: str, **splits: pd.DataFrame) -> None:
    """Instance tables where `prepare` writes them: root/results/<dataset>/prepared/instances_<split>.parquet."""
    out = root / "results" / dataset / "prepared"
    out.mkdir(parents=True, exist_ok=True)
    for split, table in splits.items():
        table.to_parquet(out / f"instances_{split}.parquet")


HTTP_PAYLOAD = bytes(range(256)) * 40  # 10240 bytes, served as d/a.bin


class RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves `server.files` (name -> bytes); honours `Range: bytes=N-` unless `server.ignore_range`.

    With `server.cut_after = n`, the next response announces the full length but sends only n bytes
    and closes the connection (a dropped download), then the server behaves normally again.
    """

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        data = self.server.files.get(self.path.lstrip("/"))
        self.server.requests.append((self.path, self.headers.get("Range")))
        if data is None:
            self.send_error(404)
            return
        rng = self.headers.get("Range")
        start = 0
        if rng and not self.server.ignore_range:
            start = int(rng.removeprefix("bytes=").split("-")[0])
            if start >= len(data):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        end, self.server.cut_after = (len(data) if self.server.cut_after is None else start + self.server.cut_after), None
        self.wfile.write(data[start:end])
        self.close_connection = end < len(data)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server():
    """A local HTTP server (ThreadingHTTPServer) serving `srv.files`; records `srv.requests`."""
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    srv.files, srv.requests, srv.ignore_range, srv.cut_after = {"d/a.bin": HTTP_PAYLOAD}, [], False, None
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def server_url(srv, name: str = "d/a.bin") -> str:
    """The URL of `name` on the test server."""
    return f"http://127.0.0.1:{srv.server_address[1]}/{name}"


@pytest.fixture(scope="session")
def snakemake_tiny_run(tmp_path_factory) -> tuple[Path, float]:
    """(repository, seconds): the tiny workflow grid run once per session by `snakemake --cores 2`
    (tests/workflow_helpers.py): the SLURM test's reference, the DVC remote test's results."""
    from workflow_helpers import snakemake_tiny

    return snakemake_tiny(tmp_path_factory.mktemp("snakemake_tiny"))


def pytest_sessionstart(session: pytest.Session) -> None:
    """In CI a missing data mirror is an error, never a reason to skip real-data tests."""
    if os.environ.get("CI") and not (MIRROR / "fixtures").is_dir():
        raise pytest.UsageError(f"SGPOSE_MIRROR={MIRROR} holds no fixtures/: CI needs the shared data mirror")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `cuda` need a CUDA GPU: skipped without one (benchmarks/gpu_check.sh runs them on a GPU)."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA (run benchmarks/gpu_check.sh on a GPU machine)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
