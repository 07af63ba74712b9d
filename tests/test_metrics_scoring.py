"""The metrics score perturbed pictures with conv → batch norm pairs folded: the same scores to float rounding, the
user's model left as it was."""

import torch
from torch import nn

from convscope.analysis.metrics import faithfulness


def batch_norm_net() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(4, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(6, 3))
    for norm in (net[1], net[5]):
        norm.running_mean.uniform_(-1, 1), norm.running_var.uniform_(0.5, 2)
        nn.init.uniform_(norm.weight, 0.5, 2), nn.init.uniform_(norm.bias, -1, 1)
    return net


def test_perturbed_pictures_run_with_the_norms_folded_and_the_model_is_left_as_it_was(monkeypatch):
    calls = [0]
    norm = nn.BatchNorm2d.forward

    def counted(self, x):
        calls[0] += 1
        return norm(self, x)

    monkeypatch.setattr(nn.BatchNorm2d, "forward", counted)
    net = batch_norm_net().train()
    g = torch.Generator().manual_seed(1)
    x, a = torch.rand(3, 1, 12, 12, generator=g), torch.randn(3, 1, 12, 12, generator=g)
    y = torch.tensor([0, 1, 2])
    before = dict(net.named_parameters())
    found = faithfulness.pixel_flipping(net, x, y, a, features_in_step=12, softmax=False, batch_size=4)
    assert calls[0] == 2  # each norm once, while looking for the pairs; not in the 9 passes
    assert net.training and all(m.training for m in net.modules())
    assert dict(net.named_parameters()) == before and type(net[1]) is nn.BatchNorm2d
    net.eval()
    ranks = a.flatten(1).sort(dim=1, descending=True, stable=True).indices
    with torch.no_grad():
        for b in range(3):
            for step in range(12):
                picture = x[b].clone().flatten()
                picture[ranks[b, :12 * (step + 1)]] = 0
                expected = net(picture.view(1, 1, 12, 12))[0, y[b]].double()
                assert abs(float(found[b, step] - expected)) <= 1e-5 * max(1.0, abs(float(expected)))
