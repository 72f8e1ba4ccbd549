#!/usr/bin/python3
"""Small MobileNet- and ResNet-style networks as a user brings them: traced (torch.jit.trace) and scripted
TorchScript files and ONNX files (torch.onnx.export, opset 13 and 17), written with Debian's python3-torch
(which matches the project's LibTorch). Used by the import tests; nothing here is trained: weights are seeded
random, BatchNorm statistics are perturbed so that folding them is not a no-op.

Usage: make_models.py OUT_DIR     writes OUT_DIR/<name>.traced.pt, <name>.scripted.pt, <name>.onnx (opset 13)
                                  and <name>.opset17.onnx for each model
"""
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F


def conv_bn(cin, cout, k, stride=1, groups=1, act=nn.ReLU6):
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act is not None:
        layers.append(act())
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """MobileNetV2's block: 1x1 expansion, depthwise 3x3, linear 1x1 projection, residual when shapes allow."""

    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        hidden = cin * expand
        self.residual = stride == 1 and cin == cout
        layers = [conv_bn(cin, hidden, 1)] if expand != 1 else []
        layers += [conv_bn(hidden, hidden, 3, stride, groups=hidden), conv_bn(hidden, cout, 1, act=None)]
        self.block = nn.Sequential(*layers)

    def forward(self, x):
        y = self.block(x)
        return x + y if self.residual else y


class MobileNetV2(nn.Module):
    """A width-reduced MobileNetV2 for 1x28x28 inputs (about 20K parameters at width 1)."""

    def __init__(self, width=1.0, classes=10):
        super().__init__()
        c = lambda n: max(4, int(round(n * width / 4)) * 4)
        settings = [(1, 8, 1, 1), (4, 12, 2, 2), (4, 16, 2, 2), (4, 24, 1, 1)]  # expand, out, repeats, stride
        layers = [conv_bn(1, c(8), 3, 1)]
        cin = c(8)
        for t, cout, n, s in settings:
            for i in range(n):
                layers.append(InvertedResidual(cin, c(cout), s if i == 0 else 1, t))
                cin = c(cout)
        layers.append(conv_bn(cin, c(64), 1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(c(64), classes))

    def forward(self, x):
        x = self.features(x)
        x = F.adaptive_avg_pool2d(x, 1)
        x = torch.flatten(x, 1)
        return self.classifier(x)


class SqueezeExcite(nn.Module):
    def __init__(self, channels, squeeze):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)

    def forward(self, x):
        s = x.mean((2, 3), keepdim=True)
        s = self.fc2(F.relu(self.fc1(s)))
        return x * F.hardsigmoid(s)


class MobileNetV3Like(nn.Module):
    """MobileNetV3's pieces: HardSwish, squeeze-and-excite with HardSigmoid, SiLU, Sigmoid, a Concat of two
    branches, a Linear head after view(x.size(0), -1); and arithmetic with constants: the input normalized in
    the model, a per-channel layer scale (ConvNeXt's), a constant shift."""

    def __init__(self, classes=10):
        super().__init__()
        self.stem = conv_bn(1, 8, 3, 2, act=nn.Hardswish)
        self.dw = conv_bn(8, 8, 3, 1, groups=8, act=nn.Hardswish)
        self.se = SqueezeExcite(8, 4)
        self.branch_a = conv_bn(8, 8, 1, act=nn.SiLU)
        self.branch_b = conv_bn(8, 8, 3, 2, groups=4, act=nn.Sigmoid)
        self.pool = nn.MaxPool2d(2)
        self.gamma = nn.Parameter(torch.linspace(0.5, 1.5, 8).view(8, 1, 1))
        self.head = nn.Linear(16 * 7 * 7, classes)

    def forward(self, x):
        x = (x - 0.5) / 0.25
        x = self.se(self.dw(self.stem(x)))
        a = self.pool(self.branch_a(x)) * self.gamma
        b = self.branch_b(x) + 0.1
        y = torch.cat([a, b], 1)
        y = torch.clamp(y, -4.0, 4.0)
        return self.head(y.view(y.size(0), -1))


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (x if self.down is None else self.down(x)))


class ResNet(nn.Module):
    """A small ResNet (basic blocks, 1x1 strided shortcuts) for 1x28x28 inputs; torchvision's padded max pooling
    in the stem (at stride 1 here), a padded average pooling that leaves the padding out of its count."""

    def __init__(self, widths=(8, 16, 24), classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]),
                                  nn.ReLU(), nn.MaxPool2d(3, 1, 1))
        blocks, cin = [], widths[0]
        for i, w in enumerate(widths):
            blocks += [BasicBlock(cin, w, 1 if i == 0 else 2), BasicBlock(w, w, 1)]
            cin = w
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        x = F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
        x = torch.mean(x, dim=[2, 3])
        return self.fc(x)


class GeluBlock(nn.Module):
    """Depthwise 3x3 -> BatchNorm -> GELU -> pointwise 1x1, with a residual connection."""

    def __init__(self, channels):
        super().__init__()
        self.dw = nn.Conv2d(channels, channels, 3, 1, 1, groups=channels, bias=False)
        self.bn = nn.BatchNorm2d(channels)
        self.pw = nn.Conv2d(channels, channels, 1)

    def forward(self, x):
        return x + self.pw(F.gelu(self.bn(self.dw(x))))


class GeluResNet(nn.Module):
    """A teacher-sized network with depthwise convolutions, exact (erf) GELU and residual blocks."""

    def __init__(self, width=32, classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, width, 3, 1, 1), nn.BatchNorm2d(width), nn.GELU())
        self.stage1 = nn.Sequential(GeluBlock(width), GeluBlock(width))
        self.down = nn.Sequential(nn.Conv2d(width, 2 * width, 3, 2, 1), nn.BatchNorm2d(2 * width), nn.GELU())
        self.stage2 = nn.Sequential(GeluBlock(2 * width), GeluBlock(2 * width))
        self.head = nn.Linear(2 * width, classes)

    def forward(self, x):
        x = self.stage2(self.down(self.stage1(self.stem(x))))
        return self.head(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


MODELS = {"mobilenet_v2": MobileNetV2, "mobilenet_v3": MobileNetV3Like, "resnet": ResNet,
          "gelu_resnet": GeluResNet}


def perturb_batchnorm(model):
    g = torch.Generator().manual_seed(7)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.1)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name, cls in MODELS.items():
        torch.manual_seed(1)
        model = cls()
        with torch.no_grad():
            perturb_batchnorm(model)
        model.eval()
        example = torch.randn(2, 1, 28, 28)
        traced = torch.jit.trace(model, example)
        traced.save(os.path.join(out, name + ".traced.pt"))
        torch.jit.script(model).save(os.path.join(out, name + ".scripted.pt"))
        for opset, suffix in ((13, ".onnx"), (17, ".opset17.onnx")):
            torch.onnx.export(model, example, os.path.join(out, name + suffix), opset_version=opset,
                              input_names=["image"], output_names=["logits"],
                              dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}})
        params = sum(p.numel() for p in model.parameters())
        print(f"{name}: {params} parameters")


if __name__ == "__main__":
    main()
