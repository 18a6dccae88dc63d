"""The backbone on its own: official numerics per fork at any input size, official key layout,
options and error messages."""
import math

import pytest
import torch

import official  # tests/official.py
from builders import MINI_ARCH, randomize_bn  # tests/builders.py
from mmhrformer import HRFormer, convert_official_backbone
from mmhrformer.models.backbones.hrformer import HRFormerModule, WindowAttention


@pytest.mark.parametrize('arch', ['tiny', 'small', 'base'])
def test_keys_shapes_and_params_match_official(arch):
    shapes = {k: torch.empty(v, device='meta') for k, v in official.key_shapes(arch).items()}
    expected = {k: tuple(v.shape) for k, v in convert_official_backbone(shapes).items()}
    model = HRFormer(arch=arch)
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == expected
    official_params = sum(math.prod(s) for k, s in expected.items()
                          if not k.endswith(official.BUFFER_SUFFIXES))
    assert official_params == official.BACKBONE_PARAMS[arch]
    assert sum(p.numel() for p in model.parameters()) == official.BACKBONE_PARAMS[arch]


@pytest.mark.parametrize('size', [(32, 32), (33, 47), (97, 130), (224, 224), (67, 251)])
def test_any_input_size(size):
    model = HRFormer(arch='tiny').eval()
    with torch.no_grad():
        outs = model(torch.rand(2, 3, *size))
    for i, (out, ch) in enumerate(zip(outs, (18, 36, 72, 144))):
        assert out.shape == (2, ch, *branch_size(*size, i))
        assert out.is_contiguous()
        assert torch.isfinite(out).all()


def to_official_names(sd):
    """This package's block names -> the official ones (the test's own inverse mapping)."""
    return {k.replace('.attn.', '.attn.attn.').replace('.ffn.', '.mlp.'): v for k, v in sd.items()}


# Branch sizes of inputs not divisible by 32: 200x150 -> 50x38, 25x19, 13x10, 7x5; 97x130 -> 25x33,
# 13x17, 7x9, 4x5; 33x47 -> 9x12, 5x6, 3x3, 2x2.
ODD_SIZES = [(2, 200, 150), (1, 97, 130), (2, 33, 47)]


FORK_SETTINGS = {  # fork: (upsample_mode, with_rpe)
    'cls': ('nearest', True), 'seg': ('nearest', True), 'pose': ('bilinear', False)}


def branch_size(h, w, i):
    """Branch i's size for an h x w input: i + 2 stride-2 convs, each rounding up."""
    for _ in range(i + 2):
        h, w = (h + 1) // 2, (w + 1) // 2
    return h, w


def branch_inputs(batch, h, w, channels, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, c, *branch_size(h, w, i), generator=g)
            for i, c in enumerate(channels)]


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


@pytest.mark.parametrize('fork', ['cls', 'pose'])
def test_module_training_step_matches_official_fork(fork, monkeypatch):
    # A training step (BN batch statistics, float64): outputs and the gradients of every
    # parameter and input, through the joined attention parameters, the hand-differentiated
    # attention and the FFN chain, against autograd through the official algorithm.
    mode, with_rpe = FORK_SETTINGS[fork]
    channels, heads = (8, 16, 32, 64), (1, 2, 2, 4)
    torch.manual_seed(0)
    module = HRFormerModule(channels, heads, 7, (0., 0.), with_rpe, False, mode,
                            dict(type='BN'), False).double().train()
    for m in module.modules():
        if isinstance(m, WindowAttention) and with_rpe:
            torch.nn.init.normal_(m.relative_position_bias_table, std=0.5)
    xs = [x.double().requires_grad_() for x in branch_inputs(2, 97, 130, channels)]
    grads = [torch.randn(x.shape, dtype=torch.float64) for x in xs]
    torch.autograd.backward(module([x for x in xs]), grads)
    sd = {k: v.detach().clone().requires_grad_(v.is_floating_point())
          for k, v in to_official_names({f'm.{k}': v for k, v in module.state_dict().items()
                                         }).items()}
    xs_official = [x.detach().clone().requires_grad_() for x in xs]
    monkeypatch.setattr(official, 'BN_TRAINING', True)
    blocks = [official.transformer_block(official.transformer_block(
        x, sd, f'm.branches.{b}.0', heads[b], 7, with_rpe), sd, f'm.branches.{b}.1', heads[b],
        7, with_rpe) for b, x in enumerate(xs_official)]
    torch.autograd.backward(official.fuse(blocks, sd, 'm', fork), grads)
    for x, expected in zip(xs, xs_official):
        torch.testing.assert_close(x.grad, expected.grad)
    for name, p in module.named_parameters():
        expected = sd[next(iter(to_official_names({f'm.{name}': None})))].grad
        torch.testing.assert_close(p.grad, expected, msg=name)


@pytest.mark.parametrize('fork', official.FORKS)
@pytest.mark.parametrize('size', ODD_SIZES)
def test_backbone_matches_official_fork_at_odd_sizes(official_tiny, fork, size):
    # seg: window 15 (the paper's B-w15 setting), tables resized from the window-7 weights.
    mode, with_rpe = FORK_SETTINGS[fork]
    window = 15 if fork == 'seg' else 7
    sd = official.backbone_only(official_tiny)
    if fork == 'seg':
        sd = {k: official.resize_table(v, 15) if k.endswith('relative_position_bias_table') else v
              for k, v in sd.items()}
    model = HRFormer(arch='tiny', window_size=window, with_rpe=with_rpe, upsample_mode=mode)
    state = convert_official_backbone(sd)
    if not with_rpe:
        state = {k: v for k, v in state.items() if not k.endswith('relative_position_bias_table')}
    model.load_state_dict(state, strict=True)
    x = torch.randn(*size[:1], 3, *size[1:])
    with torch.no_grad():
        ours = model.eval()(x)
        expected = official.backbone(x, sd, official.HEADS['tiny'], window, fork)
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
    model = HRFormer(arch=MINI_ARCH).eval()
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
