"""The official HRFormer backbone's inference forward, written out from the official code.

An oracle independent of the package: plain functions over an official state dict (official key
names: ``attn.attn.*_proj``, ``mlp.*``), read from HRNet/HRFormer's three forks (``cls/models/hrt.py``,
``seg/lib/models/backbones/hrt/hrt_backbone.py``, ``pose/mmpose/models/backbones/hrt.py`` and their
``modules/``). The forks differ in two places only:

* fusion of a lower-resolution branch: cls / seg ``nn.Upsample(scale_factor, 'nearest')`` then
  ``F.interpolate(size, 'bilinear', align_corners=True)``; pose ``nn.Upsample(scale_factor,
  'bilinear', align_corners=False)`` then ``resize(size, 'bilinear', align_corners=False)``.
  Both resize calls run unconditionally in the official code.
* the relative position bias: the pose fork never adds it.

BatchNorm runs in eval mode (running statistics), every norm with the official eps.
"""
import math

import torch
import torch.nn.functional as F

FORKS = ('cls', 'seg', 'pose')


def relative_position_index(w: int) -> torch.Tensor:
    """Swin's (w*w, w*w) index, as ``MHA_.__init__`` computes it."""
    coords = torch.stack(torch.meshgrid(torch.arange(w), torch.arange(w), indexing='ij')).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0).contiguous()
    rel[:, :, 0] += w - 1
    rel[:, :, 1] += w - 1
    rel[:, :, 0] *= 2 * w - 1
    return rel.sum(-1)


def conv(x, sd, p, stride=1):
    weight = sd[f'{p}.weight']
    groups = x.shape[1] // weight.shape[1]
    return F.conv2d(x, weight, sd.get(f'{p}.bias'), stride, weight.shape[-1] // 2, 1, groups)


def bn(x, sd, p):
    return F.batch_norm(x, sd[f'{p}.running_mean'], sd[f'{p}.running_var'], sd[f'{p}.weight'],
                        sd[f'{p}.bias'], False, 0.0, 1e-5)


def bottleneck(x, sd, p):
    out = F.relu(bn(conv(x, sd, f'{p}.conv1'), sd, f'{p}.bn1'))
    out = F.relu(bn(conv(out, sd, f'{p}.conv2'), sd, f'{p}.bn2'))
    out = bn(conv(out, sd, f'{p}.conv3'), sd, f'{p}.bn3')
    if f'{p}.downsample.0.weight' in sd:
        x = bn(conv(x, sd, f'{p}.downsample.0'), sd, f'{p}.downsample.1')
    return F.relu(out + x)


def window_attention(x, sd, p, num_heads, window, with_rpe=True, pad_mask=False):
    """``InterlacedPoolAttention``: (B, H, W, C) -> (B, H, W, C). Zero padding centred on the
    map (``PadBlock``), row-major w x w windows (``LocalPermuteModule``), separate q / k / v
    projections, q scaled after its projection, logits + bias, softmax, out projection.
    ``pad_mask`` masks padded keys (not official; this package's option)."""
    b, h, w_, c = x.shape
    pad_h, pad_w = math.ceil(h / window) * window - h, math.ceil(w_ / window) * window - w_
    top, left = pad_h // 2, pad_w // 2
    xp = F.pad(x, (0, 0, left, pad_w - left, top, pad_h - top))
    valid = F.pad(torch.ones(1, h, w_, 1), (0, 0, left, pad_w - left, top, pad_h - top))
    hp, wp = xp.shape[1:3]
    d = c // num_heads
    n = window * window
    bias = 0
    if with_rpe:
        table = sd[f'{p}.relative_position_bias_table']
        bias = table[relative_position_index(window).view(-1)].view(n, n, -1).permute(2, 0, 1)
    out = torch.zeros_like(xp)
    for i in range(0, hp, window):
        for j in range(0, wp, window):
            tokens = xp[:, i:i + window, j:j + window].reshape(b, n, c)
            keep = valid[:, i:i + window, j:j + window].reshape(1, 1, 1, n)
            q, k, v = (F.linear(tokens, sd[f'{p}.{name}.weight'], sd[f'{p}.{name}.bias'])
                       for name in ('q_proj', 'k_proj', 'v_proj'))
            q = (q * d**-0.5).view(b, n, num_heads, d).transpose(1, 2)
            k = k.view(b, n, num_heads, d).transpose(1, 2)
            v = v.view(b, n, num_heads, d).transpose(1, 2)
            logits = q @ k.transpose(-2, -1) + bias
            if pad_mask:
                logits = logits.masked_fill(keep == 0, float('-inf'))
            o = (logits.softmax(-1) @ v).transpose(1, 2).reshape(b, window, window, c)
            out[:, i:i + window, j:j + window] = F.linear(o, sd[f'{p}.out_proj.weight'],
                                                          sd[f'{p}.out_proj.bias'])
    return out[:, top:top + h, left:left + w_]


def transformer_block(x, sd, p, num_heads, window, with_rpe):
    """``GeneralTransformerBlock``: pre-norm attention and ``MlpDWBN`` residuals."""
    b, c, h, w = x.shape
    tokens = x.permute(0, 2, 3, 1)
    normed = F.layer_norm(tokens, (c, ), sd[f'{p}.norm1.weight'], sd[f'{p}.norm1.bias'], 1e-6)
    tokens = tokens + window_attention(normed, sd, f'{p}.attn.attn', num_heads, window, with_rpe)
    normed = F.layer_norm(tokens, (c, ), sd[f'{p}.norm2.weight'], sd[f'{p}.norm2.bias'], 1e-6)
    y = normed.permute(0, 3, 1, 2)
    for conv_name, norm_name in (('fc1', 'norm1'), ('dw3x3', 'norm2'), ('fc2', 'norm3')):
        y = F.gelu(bn(conv(y, sd, f'{p}.mlp.{conv_name}'), sd, f'{p}.mlp.{norm_name}'))
    return (tokens + y.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def upsample(x, factor, size, fork):
    """A lower-resolution branch brought to branch i's size, as each fork does it."""
    if fork == 'pose':
        x = F.interpolate(x, scale_factor=factor, mode='bilinear', align_corners=False)
        return F.interpolate(x, size=size, mode='bilinear', align_corners=False)
    x = F.interpolate(x, scale_factor=factor, mode='nearest')
    return F.interpolate(x, size=size, mode='bilinear', align_corners=True)


def fuse(xs, sd, p, fork):
    """``HighResolutionTransformerModule.forward``'s fusion; outputs only for the branches that
    have fuse layers (the pose checkpoints' last module fuses into branch 0 alone)."""
    outs = []
    i = 0
    while any(k.startswith(f'{p}.fuse_layers.{i}.') for k in sd):
        y = 0
        for j, x in enumerate(xs):
            q = f'{p}.fuse_layers.{i}.{j}'
            if j == i:
                y = y + x
            elif j > i:
                z = bn(conv(x, sd, f'{q}.0'), sd, f'{q}.1')
                y = y + upsample(z, 2**(j - i), xs[i].shape[-2:], fork)
            else:
                z = x
                for k in range(i - j):
                    z = bn(conv(z, sd, f'{q}.{k}.0', stride=2), sd, f'{q}.{k}.1')
                    z = bn(conv(z, sd, f'{q}.{k}.2'), sd, f'{q}.{k}.3')
                    if k < i - j - 1:
                        z = F.relu(z)
                y = y + z
        outs.append(F.relu(y))
        i += 1
    return outs


def official_backbone(x, sd, num_heads, window, fork):
    """The official HRT forward: image (B, 3, H, W) -> list of branch outputs.

    Args:
        sd (dict): Official backbone state dict, no prefix.
        num_heads (Sequence[int]): Heads per branch.
        window (int): Attention window of every stage.
        fork (str): ``'cls'``, ``'seg'`` or ``'pose'``.
    """
    assert fork in FORKS, fork
    with_rpe = fork != 'pose'
    x = F.relu(bn(conv(x, sd, 'conv1', 2), sd, 'bn1'))
    x = F.relu(bn(conv(x, sd, 'conv2', 2), sd, 'bn2'))
    for k in range(2):
        x = bottleneck(x, sd, f'layer1.{k}')
    xs = [x]
    for s in (2, 3, 4):
        t = f'transition{s - 1}'
        new = []
        for i in range(s):
            if f'{t}.{i}.0.weight' in sd:  # channel change at the same resolution
                new.append(F.relu(bn(conv(xs[i], sd, f'{t}.{i}.0'), sd, f'{t}.{i}.1')))
            elif f'{t}.{i}.0.0.weight' in sd:  # a new branch, from the lowest one
                new.append(F.relu(bn(conv(xs[-1], sd, f'{t}.{i}.0.0', stride=2), sd,
                                     f'{t}.{i}.0.1')))
            else:
                new.append(xs[i])
        xs = new
        m = 0
        while f'stage{s}.{m}.branches.0.0.norm1.weight' in sd:
            p = f'stage{s}.{m}'
            xs = [transformer_block(transformer_block(x, sd, f'{p}.branches.{b}.0', num_heads[b],
                                                      window, with_rpe),
                                    sd, f'{p}.branches.{b}.1', num_heads[b], window, with_rpe)
                  for b, x in enumerate(xs)]
            xs = fuse(xs, sd, p, fork)
            m += 1
    return xs
