"""Derived inference weights (folded BNs, stacked q / k / v, the position bias) follow every way
parameters change, and never reach state dicts or copies."""
import copy

import pytest
import torch

from mmhrformer import HRFormer
from mmhrformer.layers import derived


def tiny_model():
    torch.manual_seed(0)
    model = HRFormer(arch=dict(num_modules=(1, 1, 1), channels=(8, 16, 32, 64),
                               num_heads=(1, 1, 2, 2))).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 1.5)
    return model


def outputs(model, x):
    with torch.no_grad():
        return torch.cat([o.flatten() for o in model(x)])


def fresh_outputs(model, x):
    """What a model with no derived weights kept computes."""
    clone = tiny_model()
    clone.load_state_dict(model.state_dict())
    return outputs(clone.to(next(model.parameters()).dtype), x)


def update_in_place(model):
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.1)
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_var.mul_(2)


def load_other_weights(model):
    other = tiny_model()
    update_in_place(other)
    model.load_state_dict(other.state_dict())


def replace_parameters(model):
    for m in model.modules():
        for name, p in list(m.named_parameters(recurse=False)):
            setattr(m, name, torch.nn.Parameter(p.detach() * 0.9))


def round_trip_through_half(model):
    model.half().float()


@pytest.mark.parametrize('change', [update_in_place, load_other_weights, replace_parameters,
                                    round_trip_through_half])
def test_follow_parameter_changes(change):
    model = tiny_model()
    x = torch.randn(1, 3, 64, 48)
    before = outputs(model, x)
    torch.testing.assert_close(outputs(model, x), before)  # reused: same numbers
    change(model)
    after = outputs(model, x)
    assert not torch.allclose(after, before)
    torch.testing.assert_close(after, fresh_outputs(model, x), rtol=0, atol=0)


def test_dtype_change_follows():
    model = tiny_model()
    x = torch.randn(1, 3, 64, 48)
    outputs(model, x)
    model.double()
    out = outputs(model, x.double())
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, fresh_outputs(model, x.double()), rtol=0, atol=0)


def test_not_in_state_dict_or_copies():
    model = tiny_model()
    x = torch.randn(1, 3, 64, 48)
    attributes = {name: set(vars(m)) for name, m in model.named_modules()}
    outputs(model, x)
    assert {name: set(vars(m)) for name, m in model.named_modules()} == attributes
    assert set(model.state_dict()) == set(tiny_model().state_dict())
    torch.testing.assert_close(outputs(copy.deepcopy(model), x), outputs(model, x))


def test_computed_every_call_with_gradients():
    module = torch.nn.Linear(2, 2)
    calls = []

    def compute():
        calls.append(1)
        return module.weight * 2

    with torch.no_grad():
        derived(module, 'w', [module.weight], compute)
        derived(module, 'w', [module.weight], compute)
    assert len(calls) == 1
    derived(module, 'w', [module.weight], compute).sum().backward()
    assert len(calls) == 2 and module.weight.grad is not None
    with torch.inference_mode():
        derived(module, 'w', [module.weight], compute)
    assert len(calls) == 2  # parameters made outside inference mode can be versioned
    with torch.no_grad():
        derived(module, 'w', [module.weight], compute, extra_key=torch.float64)
    assert len(calls) == 3
