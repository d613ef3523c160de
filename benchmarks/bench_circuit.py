"""What proving a circuit costs: the circuit of "tabby" in EfficientNet-Lite0 through three
layers on N demo images (about 50 edges), validated with each layer's interventions
stacked into batched passes against one intervention per pass (what the first version did),
in one process. `python benchmarks/bench_circuit.py [N]`.
"""

from __future__ import annotations

import sys
import time

import torch


def main(n: int = 8) -> None:
    from netscope.vision.concepts.circuit import class_circuit
    from netscope.vision.concepts.circuit_checks import validate
    from netscope.vision.models.images import SAMPLES, load_image
    from netscope.vision.models.zoo import load_model

    torch.set_grad_enabled(False)
    lm = load_model("efficientnet-lite0")
    names = list(SAMPLES)
    x = torch.cat([lm.preprocess.tensor(load_image(names[i % len(names)])) for i in range(n)])
    layers = ["_blocks.13", "_blocks.14", "_blocks.15"]
    start = time.perf_counter()
    circuit = class_circuit(lm.model, x, 281, layers, top=6, share=0.02)
    built = time.perf_counter() - start
    print(f"{n} images, {sum(len(v) for v in circuit.nodes.values())} nodes, "
          f"{len(circuit.edges)} edges; built in {built:.2f} s")
    for label, batch in (("one intervention per pass", n), ("stacked, 16 images", 16),
                         ("stacked, 32 images", 32), ("stacked, 64 images", 64),
                         ("one intervention per pass", n)):
        start = time.perf_counter()
        c = validate(lm.model, x, circuit, batch=batch)
        took = time.perf_counter() - start
        print(f"{label:28s} {took:6.2f} s, {c['forward_passes']:3d} forward passes, "
              f"{c['images_forwarded']} images; node r {c['correlation']:+.3f}, edge r "
              f"{c['edge_correlation']:+.3f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 8)
