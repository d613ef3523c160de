"""Capture hygiene: hooks, modes, requires_grad and .grad are always left as found."""

import gc

import pytest
import torch
from torch import nn

from netscope import vision as A
from netscope.errors import NetscopeError
from netscope.vision.core.capture import LayerRef, capture
from netscope.vision.features.activations import activations
from netscope.vision.features.ascent import AscentConfig, visualize_filters
from netscope.vision.methods import guided
from netscope.vision.models.zoo import Preprocess
from tests.vision.tiny import Reused, TinyGAP, image


def _snapshot(model: nn.Module):
    return ([m.training for m in model.modules()], [p.requires_grad for p in model.parameters()])


def _assert_clean(model: nn.Module, before) -> None:
    for m in model.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks
        assert not m._backward_hooks
    assert _snapshot(model) == before
    assert all(p.grad is None for p in model.parameters())


def _mixed_state_model():
    model = TinyGAP()
    model.train()
    model.features[0].eval()  # an odd mix that must survive
    model.fc.weight.requires_grad_(False)
    return model


CALLS = [
    lambda m: A.grad_cam(m, image(2)),
    lambda m: A.grad_cam(m, image(), variant="gradcam++"),
    lambda m: A.grad_cam(m, image(), variant="layercam"),
    lambda m: A.eigen_cam(m, image()),
    lambda m: A.eigen_cam(m, image(), layer="fc"),  # raises inside the capture
    lambda m: A.cam(m, image()),
    lambda m: A.saliency(m, image(), samples=2),
    lambda m: guided.guided_grad_cam(m, image(), layer="features.2"),
    lambda m: A.predict(m, image()),
    lambda m: activations(m, image()),
    lambda m: visualize_filters(m, "features.0", [0, 1], Preprocess(8),
                                AscentConfig(steps=2, size=8)),
    lambda m: visualize_filters(m, "features.0", [0], Preprocess(8),
                                AscentConfig(steps=2, size=8, param="fourier", rotate=5)),
    lambda m: A.grad_cam(m, image(), targets=99),  # raises inside the capture
    lambda m: A.grad_cam(m, image(), layer="fc"),  # raises inside the capture
]


@pytest.mark.parametrize("call", range(len(CALLS)))
def test_model_left_as_found(call):
    model = _mixed_state_model()
    before = _snapshot(model)
    try:
        CALLS[call](model)
    except NetscopeError:
        pass
    _assert_clean(model, before)


def test_exception_in_body_restores_everything():
    model = _mixed_state_model()
    before = _snapshot(model)
    with pytest.raises(RuntimeError, match="boom"), capture(model, ["features.1"]):
        assert not model.training and not model.fc.bias.requires_grad
        raise RuntimeError("boom")
    _assert_clean(model, before)


def test_repeated_grad_cam_does_not_grow():
    model, x = TinyGAP(), image()
    for _ in range(5):
        A.grad_cam(model, x)
    gc.collect()
    tensors = sum(type(o) is torch.Tensor for o in gc.get_objects())
    for _ in range(300):
        A.grad_cam(model, x)
    gc.collect()
    assert sum(type(o) is torch.Tensor for o in gc.get_objects()) <= tensors
    _assert_clean(model, _snapshot(model))


def test_in_place_relu_does_not_overwrite_the_record():
    model, x = TinyGAP(), image()
    with capture(model, ["features.0"]) as rec, torch.no_grad():
        model(x)
        conv_out = rec["features.0"]
    expected = model.features[0](x)
    torch.testing.assert_close(conv_out, expected)
    assert (conv_out < 0).any()  # the ReLU after it did not clip the recorded values


def test_grad_cam_on_layer_followed_by_in_place_relu_matches_autograd():
    model, x = TinyGAP(), image()
    h = A.grad_cam(model, x, 1, layer="features.2", normalize="none")
    with torch.no_grad():
        a1 = torch.relu(model.features[0](x))
    a2 = model.features[2](a1).detach().requires_grad_(True)
    y = model.fc(torch.relu(a2).mean((2, 3)))[0, 1]
    (g,) = torch.autograd.grad(y, a2)
    expected = torch.relu((g.mean((2, 3))[:, :, None, None] * a2.detach()).sum(1))
    torch.testing.assert_close(h.maps, expected)


def test_reused_module_records_each_call():
    model, x = Reused(), image()
    with capture(model, ["act"]) as rec, torch.no_grad():
        model(x)
        assert len(rec.all_calls("act")) == 2
        first, last = rec["act#0"], rec["act"]
    assert first.shape == (1, 4, 8, 8) and last.shape == (1, 6, 4, 4)
    torch.testing.assert_close(last, rec["act#1"])


def test_grad_cam_at_either_call_of_a_reused_module():
    model, x = Reused(), image()
    late = A.grad_cam(model, x, 0, layer="act", normalize="none")
    again = A.grad_cam(model, x, 0, layer="act#1", normalize="none")
    torch.testing.assert_close(late.maps, again.maps)
    early = A.grad_cam(model, x, 0, layer="act#0", normalize="none")
    with torch.no_grad():
        a = torch.relu(model.conv1(x))
    a = a.requires_grad_(True)
    y = model.fc(torch.relu(model.conv2(a)).mean((2, 3)))[0, 0]
    (g,) = torch.autograd.grad(y, a)
    expected = torch.relu((g.mean((2, 3))[:, :, None, None] * a.detach()).sum(1))
    torch.testing.assert_close(early.maps, expected)
    assert early.maps.shape == (1, 8, 8) and late.maps.shape == (1, 4, 4)


def test_bad_layer_refs():
    model = Reused()
    with pytest.raises(NetscopeError, match="ran 2 time"):
        with capture(model, ["act#5"]) as rec, torch.no_grad():
            model(image())
            rec["act#5"]
    with pytest.raises(NetscopeError, match="must be an integer"):
        LayerRef.parse("act#last")
    with pytest.raises(NetscopeError, match=r"no layer named 'acts'.*Close matches: act"):
        with capture(model, ["acts"]):
            pass


def test_probes_that_watch_every_module_leave_no_hook():
    from netscope.vision.core.attention_record import attention_recorded
    from netscope.vision.core.layer_choice import grid_layers
    from netscope.vision.core.memory import activation_elements
    from netscope.vision.features.activations import list_layers
    from tests.vision.tiny_transformers import TinyViT

    model = TinyGAP()
    before = _snapshot(model)
    assert [i.shape for i in list_layers(model, 8)][:2] == [(1, 5, 8, 8), (1, 4, 8, 8)]
    _assert_clean(model, before)
    with pytest.raises(NetscopeError, match="cannot run on a 1x1 probe"):
        list_layers(nn.Sequential(nn.Conv2d(3, 2, 3), nn.Flatten()).double(), 1)
    grid_layers(model, image())
    assert activation_elements(model, 8) > 0
    _assert_clean(model, before)
    vit = TinyViT(mha=True).eval()
    with pytest.raises(RuntimeError), attention_recorded(vit):
        raise RuntimeError("the body fails")
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in vit.modules())


def test_batch_first_attention_gets_a_foldable_layout_and_the_same_values():
    """Inside capture (weights frozen) a batch-first nn.MultiheadAttention receives its
    input laid out so that its internal (tokens, batch, dim) view is contiguous; query, key
    and value stay one tensor; the outputs are unchanged; the hook goes on exit."""
    from tests.vision.tiny_transformers import TorchvisionViT

    torch.manual_seed(0)
    vit = TorchvisionViT().double().eval()
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    before = vit(x)
    seen = []
    mha = vit.encoder.layers[0].self_attention

    def watch(_m, args, kwargs):
        seen.append((args[0].transpose(0, 1).is_contiguous(), args[0] is args[1] is args[2]))
    with capture(vit, ["encoder.layers.1"]):
        handle = mha.register_forward_pre_hook(watch, with_kwargs=True)  # after capture's
        try:
            torch.testing.assert_close(vit(x), before)
        finally:
            handle.remove()
    assert seen == [(True, True)]
    assert not any(m._forward_pre_hooks for m in vit.modules())
