"""netscope's balancing strategies against LibMTL's on one step of the same network.

LibMTL (1.1.5) declares torchvision through its model zoo, so only its weighting modules
are loaded (from an unpacked wheel: pip download --no-deps LibMTL; unzip to DIR). Both see
the same MMoE (netscope's), the same batch and the same per-task losses; the number
compared is the gradient each puts on the shared parameters (the update an optimizer then
takes): the largest difference relative to its norm, and the cosine.

    python benchmarks/peer_libmtl.py /tmp/libmtl/lib
"""

from __future__ import annotations

import random
import sys
import types

import numpy as np
import torch

from netscope.multitask.balancing.balancer import Balancer
from netscope.multitask.networks.experts import MMoE, own_parameters
from netscope.multitask.networks.joint import task_jacobian, task_means

# netscope key -> (LibMTL class, its keyword arguments)
PAIRS = {"sum": ("EW", {}), "pcgrad": ("PCGrad", {}), "mgda": ("MGDA", {"mgda_gn": "none"}),
         "cagrad": ("CAGrad", {"calpha": 0.5, "rescale": 1}), "imtl-g": ("IMTL", {}),
         "uncertainty": ("UW", {}), "dwa": ("DWA", {"T": 2.0}),
         "gradnorm": ("GradNorm", {"alpha": 1.5}), "rlw": ("RLW", {"dist": "Normal"})}


def libmtl(root: str):
    pkg = types.ModuleType("LibMTL")
    pkg.__path__ = [f"{root}/LibMTL"]
    sys.modules["LibMTL"] = pkg  # its __init__ imports the model zoo (torchvision)
    import LibMTL.weighting as weighting

    return weighting


def harness(cls, net, shared, n_tasks):
    class Harness(cls):
        def __init__(self):
            super().__init__()
            self.task_num, self.device, self.rep_grad, self.epoch = n_tasks, "cpu", False, 1
            self.train_loss_buffer = np.ones((n_tasks, 3))
            self.init_param()

        def get_share_params(self):
            return shared

        def zero_grad_share_params(self):
            for p in shared:  # LibMTL's optimizers zero gradients in place
                if p.grad is not None:
                    p.grad.zero_()

    return Harness()


def main(root: str, n_tasks: int = 3) -> None:
    weighting = libmtl(root)
    torch.manual_seed(0)
    net = MMoE(6, n_tasks, 1, widths=(8, 5), tower=4, experts=3, seed=3)
    x = torch.randn(48, 6, dtype=torch.float64)
    t = torch.arange(48) % n_tasks
    y = torch.randn(48, dtype=torch.float64)
    params = list(net.parameters())
    own = own_parameters(net)
    shared = [p for p, o in zip(params, own, strict=True) if not o]

    def losses():
        return task_means((net(x, t)[:, 0] - y) ** 2, t)[0]

    grads = task_jacobian(losses(), params)
    J = torch.cat([g.reshape(n_tasks, -1) for g, o in zip(grads, own, strict=True)
                   if not o], 1).numpy()
    print(f"{'strategy':12} {'LibMTL':8} {'max |diff| / |g|':>17} {'cosine':>8}")
    for key, (name, kw) in PAIRS.items():
        ours = Balancer(key, n_tasks).step(J, losses().detach().numpy(),
                                           np.arange(n_tasks)).shared
        h = harness(getattr(weighting, name), net, shared, n_tasks)
        for p in params:
            p.grad = None
        np.random.seed(0)
        random.seed(0)  # LibMTL's PCGrad shuffles the projection order with Python's random
        h.backward(losses(), **kw)
        theirs = torch.cat([p.grad.reshape(-1) for p in shared]).numpy()
        rel = np.abs(ours - theirs).max() / np.linalg.norm(theirs)
        cos = ours @ theirs / np.linalg.norm(ours) / np.linalg.norm(theirs)
        print(f"{key:12} {name:8} {rel:17.2e} {cos:8.5f}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/libmtl/lib")
