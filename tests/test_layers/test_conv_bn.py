"""Conv + BN folding and the fused oneDNN kernels against the plain ops."""
import pytest
import torch
import torch.nn.functional as F

from mmhrformer.layers import conv_bn, set_fused_kernels, use_fused_kernels


@pytest.mark.parametrize('activation', [None, 'relu', 'gelu'])
@pytest.mark.parametrize('with_residual', [False, True])
@pytest.mark.parametrize('groups,memory_format', [(1, torch.channels_last),
                                                  (8, torch.contiguous_format)])
def test_folded_conv_bn_matches_plain_ops(activation, with_residual, groups, memory_format):
    # At inference BN is folded into the conv; on a CPU the conv then runs as oneDNN's
    # conv + activation (+ residual) kernel.
    conv = torch.nn.Conv2d(8, 16, 3, stride=2, padding=1, groups=groups)
    bn = torch.nn.BatchNorm2d(16)
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.5, 2)
    torch.nn.init.normal_(bn.weight)
    bn.eval()
    x = torch.randn(2, 8, 9, 9).contiguous(memory_format=memory_format)
    residual = torch.randn(2, 16, 5, 5) if with_residual else None
    with torch.no_grad():
        expected = bn(conv(x)) + (0 if residual is None else residual)
        if activation:
            expected = getattr(F, activation)(expected)
        torch.testing.assert_close(conv_bn(x, conv, bn, activation, residual), expected,
                                   atol=1e-5, rtol=1e-5)


def test_eval_bn_with_gradients_takes_the_differentiable_path():
    # norm_eval fine-tuning: BN in eval mode, but conv weights still need gradients.
    conv = torch.nn.Conv2d(4, 8, 1)
    bn = torch.nn.BatchNorm2d(8).eval()
    conv_bn(torch.randn(1, 4, 5, 5), conv, bn, 'gelu').sum().backward()
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0


class ConvBNReLU(torch.nn.Module):

    def __init__(self, conv, bn):
        super().__init__()
        self.conv, self.bn = conv, bn

    def forward(self, x):
        return conv_bn(x, self.conv, self.bn, 'relu')


def fused_kernel_calls(fn):
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        fn()
    return sum(e.count for e in prof.key_averages() if '_convolution_pointwise' in e.key)


def test_fused_kernels_switch():
    conv, bn = torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.BatchNorm2d(16).eval()
    x = torch.randn(1, 8, 9, 9)
    assert use_fused_kernels()
    with torch.no_grad():
        fused = conv_bn(x, conv, bn, 'relu')
        assert fused_kernel_calls(lambda: conv_bn(x, conv, bn, 'relu')) == 1
        set_fused_kernels(False)
        try:
            assert fused_kernel_calls(lambda: conv_bn(x, conv, bn, 'relu')) == 0
            plain = conv_bn(x, conv, bn, 'relu')
        finally:
            set_fused_kernels(True)
    torch.testing.assert_close(fused, plain, atol=1e-5, rtol=1e-5)


def test_fused_kernels_only_in_eager_fp32_inference():
    conv, bn = torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.BatchNorm2d(16).eval()
    x = torch.randn(1, 8, 9, 9)
    # Gradients needed (norm_eval fine-tuning), autocast, tracing: the reference ops run.
    assert fused_kernel_calls(lambda: conv_bn(x, conv, bn, 'relu')) == 0
    with torch.no_grad():
        with torch.autocast('cpu', dtype=torch.bfloat16):
            assert fused_kernel_calls(lambda: conv_bn(x, conv, bn, 'relu')) == 0
        traced = torch.jit.trace(ConvBNReLU(conv, bn), x)
    assert '_convolution_pointwise' not in str(traced.graph)
    assert 'aten::_convolution' in str(traced.graph)
