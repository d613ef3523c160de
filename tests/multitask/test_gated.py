import numpy as np
import torch

from netscope.multitask.networks.gated import GatedNet, TaskGatedMLP


def test_gated_forward_by_hand():
    net = GatedNet(n_features=2, n_tasks=2, width=2, hidden=1)
    with torch.no_grad():
        net.embed.weight.copy_(torch.tensor([[0.0, 100.0], [-100.0, 0.0]]))
        net.project.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
        net.project.bias.zero_()
        net.hidden.weight.copy_(torch.tensor([[1.0, 2.0]]))
        net.hidden.bias.copy_(torch.tensor([0.5]))
        net.out.weight.copy_(torch.tensor([[3.0]]))
        net.out.bias.copy_(torch.tensor([-1.0]))
    x = torch.tensor([[2.0, 4.0], [2.0, 4.0]], dtype=torch.float64)
    # task 0 gate = [0.5, 1]: h = [1, 4]; hidden = relu(1 + 8 + .5) = 9.5; out = 27.5
    # task 1 gate = [0, 0.5]: h = [0, 2]; hidden = relu(0 + 4 + .5) = 4.5; out = 12.5
    out = net(x, torch.tensor([0, 1]))
    torch.testing.assert_close(out, torch.tensor([27.5, 12.5], dtype=torch.float64))


def test_gated_learns_task_specific_signs():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 2))
    t = np.repeat([0, 1], 200)
    y = np.where(t == 0, X[:, 0], -X[:, 0])  # opposite relations per task
    m = TaskGatedMLP(epochs=60, lr=5e-3).fit(X, y, t)
    assert np.mean((m.predict(X, t) - y) ** 2) < 0.1
