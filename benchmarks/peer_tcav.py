"""netscope's TCAV scores against Captum 0.9's on the same model, images and CAV: Captum's
``TCAV`` is given a classifier that returns netscope's CAV, so the two differ only in how
they take the gradients and score them. `pip install --no-deps --target /tmp/captum/lib
captum`, then `PYTHONPATH=/tmp/captum/lib:. python benchmarks/peer_tcav.py`.
"""

from __future__ import annotations

import tempfile

import torch


def main() -> None:
    from captum.concept import TCAV, Classifier, Concept

    from netscope.vision.concepts.tcav import class_gradients, layer_vectors, tcav_score, train_cav

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                                torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.ReLU(),
                                torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten(),
                                torch.nn.Linear(32, 5)).eval()
    concept = torch.rand(20, 3, 16, 16) * torch.tensor([1.0, 0.2, 0.2]).view(1, 3, 1, 1)
    random = torch.rand(20, 3, 16, 16)
    inputs = torch.rand(12, 3, 16, 16)
    layer, target = "2", 3
    cav = train_cav(layer_vectors(model, layer, concept), layer_vectors(model, layer, random))
    ours = tcav_score(class_gradients(model, layer, inputs, target), cav)

    class Fixed(Classifier):  # Captum's classifier interface, returning netscope's CAV
        def __init__(self) -> None:
            pass

        def train_and_eval(self, dataloader, **kwargs):
            return {"accs": torch.tensor(cav.accuracy)}

        def weights(self):
            w = torch.from_numpy(cav.vector).float()
            return torch.stack([w, -w])  # class 0 = the concept (its id), 1 = random

        def classes(self):
            return [0, 1]

    def loader(x):
        return iter([x])

    with tempfile.TemporaryDirectory() as tmp:
        tcav = TCAV(model, [layer], classifier=Fixed(), save_path=tmp)
        sets = [[Concept(0, "concept", loader(concept)), Concept(1, "random", loader(random))]]
        got = tcav.interpret(inputs, sets, target=target)
    theirs = next(iter(got.values()))[layer]
    print(f"sign count: netscope {ours[0]:.6f}, Captum {float(theirs['sign_count'][0]):.6f}; "
          f"magnitude: netscope {ours[1]:.6g}, Captum {float(theirs['magnitude'][0]):.6g}")


if __name__ == "__main__":
    main()
