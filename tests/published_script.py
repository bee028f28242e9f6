"""Run as a script: defines the authors' architecture in __main__ and torch.saves the whole module.

Usage: python _published_script.py OUT_MODEL OUT_INPUT_NPY OUT_OUTPUT_NPY [cuda_tag]
"""

import sys

import numpy as np
import torch
from torch import nn


class ResidualBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, kernel_size=3, padding=1)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, kernel_size=3, padding=1)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv_add = nn.Conv2d(cin, cout, kernel_size=1)
        self.relu2 = nn.ReLU(inplace=True)

    def forward(self, x):
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.conv_add(x))


class UNet(nn.Module):
    def __init__(self, filters=(4, 8, 16, 32)):
        super().__init__()
        self.num_blocks = len(filters)
        self.downs = nn.ModuleList()
        self.pools = nn.ModuleList()
        self.ups = nn.ModuleList()
        self.upsamples = nn.ModuleList()
        c = 1
        for f in filters:
            self.downs.append(ResidualBlock(c, f))
            self.pools.append(nn.MaxPool2d(kernel_size=2, stride=2))
            c = f
        self.bottleneck = ResidualBlock(filters[-1], filters[-1] * 2)
        for f in reversed(filters):
            self.upsamples.append(nn.Upsample(scale_factor=2, mode="nearest"))
            self.ups.append(ResidualBlock(f * 3, f))
        self.final_conv = nn.Conv2d(filters[0], 2, kernel_size=1)

    def forward(self, x):
        skips = []
        for i in range(self.num_blocks):
            x = self.downs[i](x)
            skips.append(x)
            x = self.pools[i](x)
        x = self.bottleneck(x)
        for i in range(self.num_blocks):
            x = self.upsamples[i](x)
            x = torch.cat((skips[-1 - i], x), dim=1)
            x = self.ups[i](x)
        return self.final_conv(x)


if __name__ == "__main__":
    out_model, out_in, out_out = sys.argv[1:4]
    torch.manual_seed(0)
    model = UNet()
    # a few training steps so that BN running statistics are not trivial
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(3):
        x = torch.randn(4, 1, 32, 32)
        loss = model(x).logsumexp(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    if len(sys.argv) > 4 and sys.argv[4] == "cuda":
        import torch.serialization as ser

        ser.location_tag = lambda storage: "cuda:0"  # tag tensors as saved on the GPU
    torch.save(model, out_model)
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        y = model(x)
    np.save(out_in, x.numpy())
    np.save(out_out, y.numpy())
