"""HRNet (Sun et al. 2019) for top-down pose, written as the official pose_hrnet.py.

Module names (conv1/bn1/conv2/bn2, layer1, transition1..3, stage2..4 of HighResolutionModules with
`branches` and `fuse_layers`, final_layer) equal leoxiaobin/deep-high-resolution-net.pytorch, so
its checkpoints (and mmpose's, after renaming in `sgpose.models.checkpoints`) load directly.
The refiner's features (docs/method.md §1) are the four branch outputs of stage4's last module *before* its
final fusion (which keeps only the highest resolution), returned highest resolution first.
"""

from __future__ import annotations

from torch import Tensor, nn

from sgpose.models.features import feature_info
from sgpose.models.resnet import BN_MOMENTUM, BasicBlock, Bottleneck

# (num_modules, num_branches, num_blocks per branch) of stages 2-4; channels are width * 2**i
STAGES = ((1, 2, 4), (4, 3, 4), (3, 4, 4))
WIDTHS = (32, 48)


def _conv_bn(cin: int, cout: int, kernel: int, stride: int, relu: bool) -> nn.Sequential:
    """Conv (no bias) + BN (+ ReLU): the unit of transitions and fuse layers."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False),
                               nn.BatchNorm2d(cout, momentum=BN_MOMENTUM)]
    return nn.Sequential(*layers, nn.ReLU(True)) if relu else nn.Sequential(*layers)


class HighResolutionModule(nn.Module):
    """Parallel BasicBlock branches, then fusion: every output sums all branches resampled to it.

    With multi_scale_output=False only the highest-resolution output is fused (stage4's last module).
    """

    def __init__(self, channels: list[int], num_blocks: int, multi_scale_output: bool = True):
        super().__init__()
        self.num_branches = len(channels)
        self.channels = channels
        self.branches = nn.ModuleList(
            nn.Sequential(*(BasicBlock(c, c) for _ in range(num_blocks))) for c in channels)
        self.fuse_layers = self._make_fuse_layers(channels, multi_scale_output)
        self.relu = nn.ReLU(True)

    @staticmethod
    def _fuse_path(channels: list[int], j: int, i: int) -> nn.Module | None:
        """Branch j resampled to branch i: 1x1 conv + nearest upsampling, or i-j strided 3x3 convs."""
        if j == i:
            return None
        if j > i:
            return nn.Sequential(nn.Conv2d(channels[j], channels[i], 1, 1, 0, bias=False),
                                 nn.BatchNorm2d(channels[i]), nn.Upsample(scale_factor=2 ** (j - i), mode="nearest"))
        steps = [_conv_bn(channels[j], channels[j], 3, 2, relu=True) for _ in range(i - j - 1)]
        return nn.Sequential(*steps, _conv_bn(channels[j], channels[i], 3, 2, relu=False))

    def _make_fuse_layers(self, channels: list[int], multi_scale_output: bool) -> nn.ModuleList:
        outputs = len(channels) if multi_scale_output else 1
        return nn.ModuleList(
            nn.ModuleList(self._fuse_path(channels, j, i) for j in range(len(channels))) for i in range(outputs))

    def run_branches(self, x: list[Tensor]) -> list[Tensor]:
        """Each branch's blocks on its own resolution (the features before fusion)."""
        return [branch(xi) for branch, xi in zip(self.branches, x)]

    def fuse(self, x: list[Tensor]) -> list[Tensor]:
        """out_i = ReLU(sum_j resample_{j->i}(x_j))."""
        out = []
        for i, paths in enumerate(self.fuse_layers):
            y = x[i]
            for j, path in enumerate(paths):
                if j != i:
                    y = y + path(x[j])
            out.append(self.relu(y))
        return out

    def forward(self, x: list[Tensor]) -> list[Tensor]:
        return self.fuse(self.run_branches(x))


def _transition(pre: list[int], cur: list[int]) -> nn.ModuleList:
    """Adapt the previous stage's branches to the next one's; new branches come from the last one (stride 2)."""
    layers: list[nn.Module | None] = []
    for i, c in enumerate(cur):
        if i < len(pre):
            layers.append(_conv_bn(pre[i], c, 3, 1, relu=True) if c != pre[i] else None)
        else:
            n = i + 1 - len(pre)
            layers.append(nn.Sequential(*(_conv_bn(pre[-1], c if k == n - 1 else pre[-1], 3, 2, relu=True)
                                          for k in range(n))))
    return nn.ModuleList(layers)


class PoseHighResolutionNet(nn.Module):
    """HRNet-W`width`: stem (two 3x3/2 convs), layer1 (4 Bottlenecks), stages 2-4, 1x1 final layer.

    forward(x) -> (heatmaps (N, K, H/4, W/4), [F_0..F_3]) with F_i the i-th branch of stage4's last
    module before its final fusion (width * 2**i channels at H/4/2**i); `feature_info` describes them.
    """

    def __init__(self, width: int, num_joints: int):
        super().__init__()
        if width not in WIDTHS:
            raise ValueError(f"HRNet width must be one of {WIDTHS}, got {width}")
        self.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64, momentum=BN_MOMENTUM)
        self.conv2 = nn.Conv2d(64, 64, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(64, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        down = nn.Sequential(nn.Conv2d(64, 256, 1, bias=False), nn.BatchNorm2d(256, momentum=BN_MOMENTUM))
        self.layer1 = nn.Sequential(Bottleneck(64, 64, 1, down), *(Bottleneck(256, 64) for _ in range(3)))
        pre = [256]
        for s, (modules, branches, blocks) in enumerate(STAGES, start=2):
            cur = [width * 2 ** i for i in range(branches)]
            setattr(self, f"transition{s - 1}", _transition(pre, cur))
            last = s == 1 + len(STAGES)
            setattr(self, f"stage{s}", nn.Sequential(*(
                HighResolutionModule(cur, blocks, multi_scale_output=not (last and m == modules - 1))
                for m in range(modules))))
            pre = cur
        self.final_layer = nn.Conv2d(width, num_joints, kernel_size=1, stride=1, padding=0)
        self.num_joints = num_joints
        self.feature_info = feature_info(pre)
        self.init_weights()

    def init_weights(self) -> None:
        """He (fan-out) init for convs, BN 1/0, final layer normal std 0.001 / bias 0.

        The official code draws every conv from N(0, 0.001) and relies on ImageNet weights, which
        cannot be downloaded here; He init lets the network train from scratch (as PoseResNet).
        """
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
        nn.init.normal_(self.final_layer.weight, std=0.001)
        nn.init.constant_(self.final_layer.bias, 0)

    @staticmethod
    def _apply_transition(transition: nn.ModuleList, y: list[Tensor]) -> list[Tensor]:
        """Official rule: kept branches read their own input, new ones read the last (lowest-res) branch."""
        return [y[i] if t is None else t(y[i] if i < len(y) else y[-1]) for i, t in enumerate(transition)]

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        x = self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))))
        y = [self.layer1(x)]
        y = self.stage2(self._apply_transition(self.transition1, y))
        y = self.stage3(self._apply_transition(self.transition2, y))
        y = self._apply_transition(self.transition3, y)
        *body, last = self.stage4
        for module in body:
            y = module(y)
        features = last.run_branches(y)
        return self.final_layer(last.fuse(features)[0]), features
