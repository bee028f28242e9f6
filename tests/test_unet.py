"""The residual U-Net: size, shape, configuration, initialization."""

import pytest
import torch

from temshift.models import ModelConfig, UNet, count_parameters

torch.set_num_threads(1)


def test_paper_model_has_published_parameter_count():
    model = UNet()
    assert count_parameters(model) == 130_682
    assert model.num_blocks == 4
    assert [d.conv1.out_channels for d in model.downs] == [4, 8, 16, 32]
    assert model.bottleneck.conv1.out_channels == 64
    assert [u.conv1.in_channels for u in model.ups] == [96, 48, 24, 12]


def test_output_shape_and_size_check():
    model = UNet().eval()
    with torch.no_grad():
        assert model(torch.randn(2, 1, 48, 32)).shape == (2, 2, 48, 32)
    with pytest.raises(ValueError, match="multiples of 16"):
        model(torch.randn(1, 1, 40, 40))


def test_configurable_depth_and_filters():
    model = UNet(in_channels=3, num_classes=3, filters=(8, 16), bottleneck=32)
    assert model.config.size_multiple == 4
    with torch.no_grad():
        assert model(torch.randn(1, 3, 12, 12)).shape == (1, 3, 12, 12)
    again = UNet.from_config(model.config.model_dump())
    assert again.config == model.config
    with pytest.raises(ValueError):
        ModelConfig(filters=())


def test_initialization_is_seeded_and_as_published():
    a = UNet(generator=torch.Generator().manual_seed(5))
    b = UNet(generator=torch.Generator().manual_seed(5))
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), name
    bn = a.downs[0].bn1
    assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0)
    w = a.ups[0].conv1.weight  # Kaiming normal, fan_in = 96 * 9: std = sqrt(2 / fan_in)
    assert abs(w.std().item() / (2 / (96 * 9)) ** 0.5 - 1) < 0.05
