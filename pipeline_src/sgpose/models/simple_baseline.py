"""SimpleBaseline (Xiao et al. 2018): ResNet + three deconvolution layers + 1x1 heatmap head.

`state_dict()` names and shapes equal the official pose_resnet.py (conv1 ... layer4,
deconv_layers.{0..8}, final_layer), so official checkpoints load directly. The backbone's
features for the refiner (docs/method.md §1) are the three deconv ReLU outputs, returned highest
resolution first (docs/architecture.md, "Feature lists"). Building from params and loading
checkpoints (any naming) live in `sgpose.models.backbones` and `sgpose.models.checkpoints`.
"""

from __future__ import annotations

from torch import Tensor, nn

from sgpose.models.features import feature_info
from sgpose.models.resnet import BN_MOMENTUM, ResNet

NUM_DECONV = 3  # deconvolution layers of the official head: its 3 feature levels


class PoseResNet(ResNet):
    """ResNet-`depth` + `num_deconv` x [ConvTranspose2d(4, s2, p1), BN, ReLU] + 1x1 conv.

    forward(x) -> (heatmaps (N, K, H/4, W/4), [F_0, F_1, F_2]) with F_0 the last (highest
    resolution) deconv ReLU output; `feature_info` describes them in that order.
    """

    def __init__(self, depth: int, num_joints: int, deconv_channels: int = 256, num_deconv: int = NUM_DECONV):
        super().__init__(depth)
        self.deconv_layers = self._make_deconv_layer(num_deconv, deconv_channels)
        self.final_layer = nn.Conv2d(deconv_channels, num_joints, kernel_size=1, stride=1, padding=0)
        self.num_joints = num_joints
        self.feature_info = feature_info([deconv_channels] * num_deconv)
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
        return self.forward_head(self.forward_body(x))

    def forward_head(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """The deconv head on the trunk's C5 map (what `cache.store: trunk` caches): (heatmaps, [F_0, F_1, F_2])."""
        features = []
        for layer in self.deconv_layers:
            x = layer(x)
            if isinstance(layer, nn.ReLU):
                features.append(x)
        return self.final_layer(x), features[::-1]
