"""The backbone on its own: official numerics, shapes, options and error messages."""
import math

import pytest
import torch
import torch.nn.functional as F

from mmhrformer import HRFormer, convert_official_backbone
from mmhrformer.hrformer import (ConvFFN, HRFormerModule, WindowAttention, conv_bn,
                                 relative_position_index, resize_rpe_table)
import official_hrt as official  # tests/official_hrt.py
from official_keys import official_shapes, random_official_state_dict  # tests/official_keys.py

BUFFER_SUFFIXES = ('running_mean', 'running_var', 'num_batches_tracked', 'relative_position_index')


def official_backbone_shapes(arch):
    """Key -> shape of the official classification checkpoint, backbone keys only."""
    shapes = {k: torch.empty(v, device='meta') for k, v in official_shapes(arch).items()}
    return {k: tuple(v.shape) for k, v in convert_official_backbone(shapes).items()}


@pytest.mark.parametrize('arch,expected_params', [('tiny', 2_572_388), ('small', 7_891_050),
                                                  ('base', 44_040_666)])
def test_keys_shapes_and_params_match_official(arch, expected_params):
    official = official_backbone_shapes(arch)
    model = HRFormer(arch=arch)
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert ours == official
    official_params = sum(math.prod(s) for k, s in official.items() if not k.endswith(BUFFER_SUFFIXES))
    assert official_params == expected_params
    assert sum(p.numel() for p in model.parameters()) == expected_params


@pytest.mark.parametrize('size', [(32, 32), (33, 47), (97, 130), (224, 224), (67, 251)])
def test_any_input_size(size):
    model = HRFormer(arch='tiny').eval()
    with torch.no_grad():
        outs = model(torch.rand(2, 3, *size))
    h, w = size
    for i, (out, ch) in enumerate(zip(outs, (18, 36, 72, 144))):
        # Every stride-2 conv rounds up: ceil(x / 2) applied i + 2 times.
        eh, ew = h, w
        for _ in range(i + 2):
            eh, ew = (eh + 1) // 2, (ew + 1) // 2
        assert out.shape == (2, ch, eh, ew)
        assert out.is_contiguous()
        assert torch.isfinite(out).all()


def to_official_names(sd):
    """This package's block names -> the official ones (the test's own inverse mapping)."""
    return {k.replace('.attn.', '.attn.attn.').replace('.ffn.', '.mlp.'): v for k, v in sd.items()}


def randomize_bn(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.2)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.2)
    return model


# Branch sizes of inputs not divisible by 32: 200x150 -> 50x38, 25x19, 13x10, 7x5; 97x130 -> 25x33,
# 13x17, 7x9, 4x5; 33x47 -> 9x12, 5x6, 3x3, 2x2.
ODD_SIZES = [(2, 200, 150), (1, 97, 130), (2, 33, 47)]
FORK_SETTINGS = {  # fork: (upsample_mode, with_rpe)
    'cls': ('nearest', True), 'seg': ('nearest', True), 'pose': ('bilinear', False)}


def branch_inputs(batch, h, w, channels, seed=0):
    g = torch.Generator().manual_seed(seed)
    xs = []
    for i, c in enumerate(channels):
        for _ in range(i + 2):
            h, w = (h + 1) // 2, (w + 1) // 2
        xs.append(torch.randn(batch, c, h, w, generator=g))
    return xs


@pytest.mark.parametrize('fork', ['cls', 'pose'])  # seg fuses as cls does
@pytest.mark.parametrize('size', ODD_SIZES + [(2, 64, 96)])
def test_module_fusion_matches_official_fork(fork, size):
    mode, with_rpe = FORK_SETTINGS[fork]
    channels, heads = (8, 16, 32, 64), (1, 2, 2, 4)
    module = HRFormerModule(channels, heads, 7, (0., 0.), with_rpe, False, mode,
                            dict(type='BN'), False)
    for m in module.modules():
        if isinstance(m, WindowAttention) and with_rpe:
            torch.nn.init.normal_(m.relative_position_bias_table, std=0.5)
    randomize_bn(module).eval()
    xs = branch_inputs(*size, channels)
    sd = to_official_names({f'm.{k}': v for k, v in module.state_dict().items()})
    with torch.no_grad():
        ours = module([x.clone() for x in xs])
        blocks = [official.transformer_block(official.transformer_block(
            x, sd, f'm.branches.{b}.0', heads[b], 7, with_rpe), sd, f'm.branches.{b}.1', heads[b],
            7, with_rpe) for b, x in enumerate(xs)]
        expected = official.fuse(blocks, sd, 'm', fork)
    for a, b in zip(ours, expected):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.fixture(scope='module')
def official_tiny():
    return random_official_state_dict('tiny')


@pytest.mark.parametrize('fork', official.FORKS)
@pytest.mark.parametrize('size', ODD_SIZES)
def test_backbone_matches_official_fork_at_odd_sizes(official_tiny, fork, size):
    # seg: window 15 (the paper's B-w15 setting), tables resized from the window-7 weights.
    mode, with_rpe = FORK_SETTINGS[fork]
    window = 15 if fork == 'seg' else 7
    sd = {k: v for k, v in official_tiny.items()
          if not k.startswith(('incre_modules', 'downsamp_modules', 'final_layer', 'classifier'))}
    if fork == 'seg':
        sd = {k: resize_rpe_table(v, 15) if k.endswith('relative_position_bias_table') else v
              for k, v in sd.items()}
    model = HRFormer(arch='tiny', window_size=window, with_rpe=with_rpe, upsample_mode=mode)
    state = convert_official_backbone(sd)
    if not with_rpe:
        state = {k: v for k, v in state.items() if not k.endswith('relative_position_bias_table')}
    model.load_state_dict(state, strict=True)
    x = torch.randn(*size[:1], 3, *size[1:])
    with torch.no_grad():
        ours = model.eval()(x)
        expected = official.official_backbone(x, sd, (1, 2, 4, 8), window, fork)
    for a, b in zip(ours, expected):
        assert a.shape == b.shape
        # Outputs reach ~10-30 in magnitude; float32 rounding of two summation orders.
        torch.testing.assert_close(a, b, atol=2e-4, rtol=1e-4)


def test_upsample_modes_differ():
    x = torch.rand(1, 3, 64, 64)
    a = HRFormer(arch='tiny', upsample_mode='nearest').eval()
    b = HRFormer(arch='tiny', upsample_mode='bilinear').eval()
    b.load_state_dict(a.state_dict())
    with torch.no_grad():
        assert not torch.allclose(a(x)[0], b(x)[0])


@pytest.mark.parametrize('size', [(14, 21), (10, 17), (5, 3)])
@pytest.mark.parametrize('pad_mask', [False, True])
def test_window_attention_matches_official_algorithm(size, pad_mask):
    attn = WindowAttention(16, 2, 7, pad_mask=pad_mask)
    torch.nn.init.normal_(attn.relative_position_bias_table, std=1.0)
    x = torch.randn(2, *size, 16)
    with torch.no_grad():
        sd = {f'attn.{k}': v for k, v in attn.state_dict().items()}
        expected = official.window_attention(x, sd, 'attn', 2, 7, pad_mask=pad_mask)
        torch.testing.assert_close(attn(x), expected, atol=1e-5, rtol=1e-5)


def test_pad_mask_changes_only_padded_windows():
    # Width 24 pads to 28 (2 columns each side): windows 1 and 2 (columns 5..18) hold no padding.
    attn = WindowAttention(8, 1, 7)
    masked = WindowAttention(8, 1, 7, pad_mask=True)
    masked.load_state_dict(attn.state_dict())
    x = torch.randn(1, 7, 24, 8)
    with torch.no_grad():
        a, b = attn(x), masked(x)
    torch.testing.assert_close(a[:, :, 5:19], b[:, :, 5:19])
    assert not torch.allclose(a[:, :, :5], b[:, :, :5])
    assert not torch.allclose(a[:, :, 19:], b[:, :, 19:])
    x = torch.randn(1, 14, 21, 8)  # divisible: nothing is padded, nothing changes
    with torch.no_grad():
        torch.testing.assert_close(attn(x), masked(x))


def test_relative_position_index_formula():
    w = 3
    idx = relative_position_index(w)
    coords = [(i, j) for i in range(w) for j in range(w)]
    for a, (y1, x1) in enumerate(coords):
        for b, (y2, x2) in enumerate(coords):
            assert idx[a, b] == (y1 - y2 + w - 1) * (2 * w - 1) + (x1 - x2 + w - 1)


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


def randomized_ffn(channels=16):
    ffn = ConvFFN(channels, 4 * channels, dict(type='BN')).train()
    for m in ffn.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            torch.nn.init.normal_(m.weight)
            torch.nn.init.normal_(m.bias)
    return ffn


def plain_ffn(ffn, x):
    """The FFN through separate autograd ops (what the chain function replaces)."""
    for conv, norm in ((ffn.fc1, ffn.norm1), (ffn.dw3x3, ffn.norm2), (ffn.fc2, ffn.norm3)):
        x = F.gelu(norm(conv(x)))
    return x


def test_ffn_chain_training_matches_autograd():
    torch.manual_seed(0)
    ffn = randomized_ffn()
    reference = randomized_ffn()
    reference.load_state_dict(ffn.state_dict())
    x = torch.randn(2, 16, 9, 11).contiguous(memory_format=torch.channels_last)
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
    torch.manual_seed(0)
    ffn = randomized_ffn()
    reference = randomized_ffn()
    reference.load_state_dict(ffn.state_dict())
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


def test_drop_path_schedule():
    model = HRFormer(arch='tiny', drop_path_rate=0.3)
    blocks = 2 * (1 + 3 + 2)
    rates = torch.linspace(0, 0.3, blocks).tolist()
    seen = []
    for s, modules in ((2, 1), (3, 3), (4, 2)):
        for m in range(modules):
            module = getattr(model, f'stage{s}')[m]
            for k in range(2):
                per_branch = {getattr(branch[k].drop_path, 'drop_prob', 0.0)
                              for branch in module.branches}
                assert len(per_branch) == 1  # same rate on every branch
                seen.append(per_branch.pop())
    assert seen == pytest.approx(rates)


def test_frozen_stages_are_frozen():
    model = HRFormer(arch='tiny', frozen_stages=2)
    model.train()
    frozen = ['conv1', 'bn1', 'conv2', 'bn2', 'layer1', 'transition1', 'stage2']
    for name, p in model.named_parameters():
        assert p.requires_grad == (name.split('.')[0] not in frozen), name
    assert not model.stage2.training and not model.layer1.training and model.stage3.training
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optim = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    sum(o.mean() for o in model(torch.rand(2, 3, 64, 64))).backward()
    optim.step()
    after = model.state_dict()
    for k in before:
        if k.split('.')[0] in frozen:
            assert torch.equal(before[k], after[k]), k
    assert not torch.equal(before['stage3.0.branches.0.0.norm1.weight'],
                           after['stage3.0.branches.0.0.norm1.weight'])


def test_norm_eval_keeps_bn_statistics():
    model = HRFormer(arch='tiny', norm_eval=True)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items() if 'running' in k}
    model(torch.rand(2, 3, 64, 64))
    after = model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items())
    assert model.stage3.training  # only the norms are kept in eval mode


def test_with_cp_same_outputs_and_gradients():
    torch.manual_seed(0)
    plain = HRFormer(arch='tiny')
    cp = HRFormer(arch='tiny', with_cp=True)
    cp.load_state_dict(plain.state_dict())
    x = torch.rand(2, 3, 64, 64)
    outs = []
    for model in (plain, cp):
        model.train()
        out = model(x)
        sum((o**2).mean() for o in out).backward()
        outs.append((out, {n: p.grad.clone() for n, p in model.named_parameters()}))
    for a, b in zip(outs[0][0], outs[1][0]):
        torch.testing.assert_close(a, b)
    for name, grad in outs[0][1].items():
        torch.testing.assert_close(grad, outs[1][1][name], atol=1e-6, rtol=1e-4, msg=name)


def test_out_indices():
    model = HRFormer(arch='tiny', out_indices=(1, 3)).eval()
    with torch.no_grad():
        outs = model(torch.rand(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [36, 144] and model.out_channels == (36, 144)
    # The last fusion is built for the returned branches only (pose checkpoint layout).
    pose = HRFormer(arch='tiny', out_indices=(0, ))
    keys = pose.state_dict().keys()
    assert any(k.startswith('stage4.1.fuse_layers.0.') for k in keys)
    assert not any(k.startswith(('stage4.1.fuse_layers.1.', 'stage4.1.fuse_layers.3.')) for k in keys)
    assert any(k.startswith('stage4.0.fuse_layers.3.') for k in keys)


def test_window_size_per_stage_and_table_resize_on_load():
    src = HRFormer(arch='tiny')
    dst = HRFormer(arch='tiny', window_size=(7, 13, 15))
    assert dst.stage3[0].branches[0][0].attn.relative_position_bias_table.shape == (625, 1)
    dst.load_state_dict(src.state_dict())  # window-7 tables are resized on load
    table = dst.stage4[0].branches[0][0].attn.relative_position_bias_table
    assert table.shape == (29 * 29, 1)
    with torch.no_grad():
        assert torch.isfinite(dst.eval()(torch.rand(1, 3, 64, 64))[0]).all()


def test_custom_arch_dict():
    arch = dict(num_modules=(1, 1, 1), channels=(8, 16, 32, 64), num_heads=(1, 2, 2, 4))
    model = HRFormer(arch=arch).eval()
    with torch.no_grad():
        assert [o.shape[1] for o in model(torch.rand(1, 3, 32, 32))] == [8, 16, 32, 64]


@pytest.mark.parametrize('kwargs,error,words', [
    (dict(arch='huge'), KeyError, 'unknown arch'),
    (dict(arch=dict(channels=(1, 2))), ValueError, 'custom arch'),
    (dict(in_channels=0), ValueError, 'in_channels'),
    (dict(window_size=(7, 7)), ValueError, 'window_size'),
    (dict(upsample_mode='bicubic'), ValueError, 'upsample_mode'),
    (dict(out_indices=(4, )), ValueError, 'out_indices'),
    (dict(arch=dict(num_modules=(1, 1, 1), channels=(8, 16, 32, 64), num_heads=(3, 2, 2, 4))),
     ValueError, 'heads'),
])
def test_bad_construction_is_named(kwargs, error, words):
    with pytest.raises(error, match=words):
        HRFormer(**kwargs)


@pytest.mark.parametrize('shape,words', [((1, 4, 64, 64), r'expected input \(B, 3, H, W\)'),
                                         ((3, 64, 64), 'expected input'),
                                         ((1, 3, 16, 64), 'at least 32x32')])
def test_bad_input_is_named(shape, words):
    model = HRFormer(arch='tiny')
    with pytest.raises(ValueError, match=words):
        model(torch.rand(*shape))
