"""SimpleBaseline (Xiao et al. 2018): ResNet + three deconvolution layers + 1x1 heatmap head.

`state_dict()` names and shapes equal the official pose_resnet.py (conv1 ... layer4,
deconv_layers.{0..8}, final_layer), so official checkpoints load directly. The backbone's
features for the refiner (SPEC 1) are the three deconv ReLU outputs, returned highest
resolution first (docs/architecture.md, "Feature lists").
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import torch
from torch import Tensor, nn

from sgpose.config import BackboneParams
from sgpose.models.resnet import BN_MOMENTUM, ResNet

log = logging.getLogger(__name__)

# checkpoint key prefixes that are not part of the official names (DataParallel, mmpose 0.x/1.x)
_PREFIXES = ("module.", "backbone.", "keypoint_head.", "head.")


class PoseResNet(ResNet):
    """ResNet-`depth` + `num_deconv` x [ConvTranspose2d(4, s2, p1), BN, ReLU] + 1x1 conv.

    forward(x) -> (heatmaps (N, K, H/4, W/4), [F_0, F_1, F_2]) with F_0 the last (highest
    resolution) deconv ReLU output; `feature_channels` lists their channels in that order.
    """

    def __init__(self, depth: int, num_joints: int, deconv_channels: int = 256, num_deconv: int = 3):
        super().__init__(depth)
        self.deconv_layers = self._make_deconv_layer(num_deconv, deconv_channels)
        self.final_layer = nn.Conv2d(deconv_channels, num_joints, kernel_size=1, stride=1, padding=0)
        self.num_joints = num_joints
        self.feature_channels = [deconv_channels] * num_deconv
        self.init_weights()

    def _make_deconv_layer(self, num_layers: int, planes: int) -> nn.Sequential:
        """[ConvTranspose2d(k4, s2, p1, output_padding 0, no bias), BN, ReLU] x num_layers."""
        layers: list[nn.Module] = []
        for _ in range(num_layers):
            layers += [
                nn.ConvTranspose2d(self.inplanes, planes, kernel_size=4, stride=2, padding=1,
                                   output_padding=0, bias=False),
                nn.BatchNorm2d(planes, momentum=BN_MOMENTUM),
                nn.ReLU(inplace=True),
            ]
            self.inplanes = planes
        return nn.Sequential(*layers)

    def init_weights(self) -> None:
        """Head as the official code (normal std 0.001, BN 1/0, final bias 0).

        The ResNet body gets He (fan-out) init instead of the official ImageNet weights, which
        cannot be downloaded here; a body initialised at std 0.001 would not train from scratch.
        """
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
        for m in self.deconv_layers.modules():
            if isinstance(m, nn.ConvTranspose2d):
                nn.init.normal_(m.weight, std=0.001)
        nn.init.normal_(self.final_layer.weight, std=0.001)
        nn.init.constant_(self.final_layer.bias, 0)

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        x = self.forward_body(x)
        features = []
        for layer in self.deconv_layers:
            x = layer(x)
            if isinstance(layer, nn.ReLU):
                features.append(x)
        return self.final_layer(x), features[::-1]


def build_backbone(bp: BackboneParams, num_joints: int) -> PoseResNet:
    """A freshly initialised SimpleBaseline for the `backbone` params section."""
    if bp.arch != "simple_baseline":
        raise ValueError(f"unsupported backbone arch {bp.arch!r}")
    return PoseResNet(bp.depth, num_joints, deconv_channels=bp.deconv_channels)


def _read_checkpoint(path: Path) -> object:
    """torch.load on CPU; tensors-only first, full unpickling only for foreign (sha256-verified) files."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: backbone checkpoint not found (run train_backbone or download)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        log.warning("%s: not a tensors-only checkpoint; loading it with full unpickling", path)
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # zip/pickle corruption of any kind
        raise ValueError(f"{path}: not a readable torch checkpoint ({err})") from None


def extract_state_dict(obj: object) -> dict[str, Tensor]:
    """The model weights from ours / official / mmpose checkpoints, under the official names."""
    sd = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(sd, dict):
        raise ValueError("checkpoint holds no state_dict")
    out = {}
    for key, value in sd.items():
        for prefix in _PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix):]
        out[key] = value
    return out


def load_backbone(path: str | Path, bp: BackboneParams, num_joints: int) -> PoseResNet:
    """The frozen backbone (eval mode, requires_grad False) from `path`; errors name the file."""
    path = Path(path)
    obj = _read_checkpoint(path)
    if isinstance(obj, dict) and "backbone" in obj:
        saved = obj["backbone"]
        for key in ("depth", "deconv_channels"):
            if saved.get(key) != getattr(bp, key):
                raise ValueError(f"{path}: trained with backbone.{key}={saved.get(key)}, params say {getattr(bp, key)}")
    model = build_backbone(bp, num_joints)
    try:
        model.load_state_dict(extract_state_dict(obj), strict=True)
    except (RuntimeError, ValueError) as err:
        raise ValueError(f"{path}: does not match a ResNet-{bp.depth} SimpleBaseline with "
                         f"{num_joints} joints and {bp.deconv_channels} deconv channels: {err}") from None
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model
