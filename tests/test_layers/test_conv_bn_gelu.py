"""The FFN's conv-BN-GELU chain in training against plain autograd: values, gradients, running
statistics, autocast, and the activations it keeps."""
import pytest
import torch
import torch.nn.functional as F

from mmhrformer.models.backbones.hrformer import ConvFFN


def randomized_ffn(channels=16):
    ffn = ConvFFN(channels, 4 * channels, dict(type='BN')).train()
    for m in ffn.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            torch.nn.init.normal_(m.weight)
            torch.nn.init.normal_(m.bias)
    return ffn


def twin_ffns():
    """Two FFNs with the same random weights: one for the chain, one for plain autograd."""
    torch.manual_seed(0)
    ffn, reference = randomized_ffn(), randomized_ffn()
    reference.load_state_dict(ffn.state_dict())
    return ffn, reference


def plain_ffn(ffn, x):
    """The FFN through separate autograd ops (what the chain function replaces)."""
    for conv, norm in ((ffn.fc1, ffn.norm1), (ffn.dw3x3, ffn.norm2), (ffn.fc2, ffn.norm3)):
        x = F.gelu(norm(conv(x)))
    return x


# channels_last is the backbone's layout (elementwise ops run over 1-d views); the other the
# fallback for any other layout.
@pytest.mark.parametrize('memory_format', [torch.channels_last, torch.contiguous_format])
def test_ffn_chain_training_matches_autograd(memory_format):
    ffn, reference = twin_ffns()
    x = torch.randn(2, 16, 9, 11).contiguous(memory_format=memory_format)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    out, expected = ffn(x1), plain_ffn(reference, x2)
    torch.testing.assert_close(out, expected)
    grad = torch.randn_like(out)
    out.backward(grad)
    expected.backward(grad)
    torch.testing.assert_close(x1.grad, x2.grad, atol=1e-5, rtol=1e-4)
    scale = max(q.grad.abs().max() for q in reference.parameters())
    for (name, p), q in zip(ffn.named_parameters(), reference.parameters()):
        # A conv bias before a training BN has a zero gradient up to rounding (of the scale).
        torch.testing.assert_close(p.grad, q.grad, atol=1e-6 * scale, rtol=1e-4, msg=name)
    for (name, b), c in zip(ffn.named_buffers(), reference.buffers()):
        torch.testing.assert_close(b, c, msg=name)  # running statistics, batches tracked


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_ffn_chain_autocast_gradients_close(dtype):
    ffn, reference = twin_ffns()
    x = torch.randn(2, 16, 9, 11)
    with torch.autocast('cpu', dtype=dtype):
        out = ffn(x)
        expected = plain_ffn(reference, x)
    assert out.dtype == expected.dtype == dtype
    out.float().square().mean().backward()
    expected.float().square().mean().backward()
    for (name, p), q in zip(ffn.named_parameters(), reference.parameters()):
        assert p.grad.dtype == torch.float32
        if not name.startswith(('fc1.bias', 'dw3x3.bias', 'fc2.bias')):  # zero up to rounding
            rel = (p.grad - q.grad).norm() / q.grad.norm()
            assert rel < 0.05, f'{name}: relative error {rel:.3f}'


def test_ffn_chain_keeps_fewer_activations():
    ffn = randomized_ffn()
    x = torch.randn(2, 16, 8, 8, requires_grad=True)

    def saved_bytes(fn):
        storages = {}

        def pack(t):
            storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            fn()
        return sum(storages.values())

    token = 2 * 8 * 8 * 4  # bytes of one channel over the batch
    # Kept: the input (C), the three conv outputs (4C, 4C, C) and per-channel statistics.
    chain = saved_bytes(lambda: ffn(x))
    plain = saved_bytes(lambda: plain_ffn(ffn, x))
    params = sum(p.numel() * 4 for p in ffn.parameters()) + sum(
        b.numel() * 4 for n, b in ffn.named_buffers() if 'running' in n)
    assert chain - params < 10.5 * 16 * token
    assert plain > 17.5 * 16 * token
