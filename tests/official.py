"""The official HRFormer code, transcribed: the oracle the tests check this package against.

Independent of the package: plain functions over official state dicts (official key names,
``attn.attn.*_proj``, ``mlp.*``), read from HRNet/HRFormer's three forks (``cls/models/hrt.py``,
``seg/lib/models/backbones/hrt/hrt_backbone.py`` with openseg's OCR head, ``pose/mmpose/models/
backbones/hrt.py``, and their ``modules/``), plus the facts of the released checkpoints: every key
and shape (``tests/data/official_keys``) and the parameter counts.

The backbone forks differ in two places only:

* fusion of a lower-resolution branch: cls / seg ``nn.Upsample(scale_factor, 'nearest')`` then
  ``F.interpolate(size, 'bilinear', align_corners=True)``; pose ``nn.Upsample(scale_factor,
  'bilinear', align_corners=False)`` then ``resize(size, 'bilinear', align_corners=False)``.
  Both resize calls run unconditionally in the official code.
* the relative position bias: the pose fork never adds it.

BatchNorm runs in eval mode (running statistics), every norm with the official eps.
"""
import math
from pathlib import Path

import torch
import torch.nn.functional as F

KEYS_DIR = Path(__file__).resolve().parent / 'data' / 'official_keys'
ARCH_FILES = {'tiny': 'hrt_tiny_cls.tsv', 'small': 'hrt_small_cls.tsv', 'base': 'hrt_base_cls.tsv'}
# Sum of numel over the official checkpoints' parameter keys, whole classifier / backbone only.
PARAMS = {'tiny': 8_035_820, 'small': 13_544_882, 'base': 50_320_098}
BACKBONE_PARAMS = {'tiny': 2_572_388, 'small': 7_891_050, 'base': 44_040_666}
HEADS = {'tiny': (1, 2, 4, 8), 'small': (1, 2, 4, 8), 'base': (2, 4, 8, 16)}
BUFFER_SUFFIXES = ('running_mean', 'running_var', 'num_batches_tracked', 'relative_position_index')
CLS_HEAD = ('incre_modules', 'downsamp_modules', 'final_layer', 'classifier')
FORKS = ('cls', 'seg', 'pose')


# ---- the released checkpoints ----

def key_shapes(arch):
    """Key -> shape of the official classification checkpoint (the whole model)."""
    path = KEYS_DIR / ARCH_FILES[arch]
    shapes = {}
    for line in path.read_text().strip().splitlines():
        key, shape = line.split('\t')
        shapes[key] = tuple(int(s) for s in shape.strip('[]').split(',') if s.strip())
    return shapes


def random_state_dict(arch, seed=1):
    """Random weights in the official classification layout, BN running statistics random too.

    Scaled as trained weights are (fan-in for conv / linear, BN weights near 1), so outputs stay
    at unit scale, where float32 rounding is ~1e-6.
    """
    shapes = key_shapes(arch)
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for key, shape in shapes.items():
        prefix = key.rsplit('.', 1)[0] + '.'
        is_bn = prefix + 'running_mean' in shapes
        if key.endswith('num_batches_tracked'):
            value = torch.tensor(1000)
        elif key.endswith('relative_position_index'):
            value = relative_position_index(math.isqrt(shape[0]))
        elif key.endswith('running_var'):
            value = torch.rand(shape, generator=g) + 0.5
        elif key.endswith('running_mean'):
            value = torch.randn(shape, generator=g) * 0.2
        elif key == 'classifier.weight':
            # Random BN statistics let the pooled features grow to ~100; a small classifier keeps
            # the logits at a realistic scale (a few units).
            value = torch.randn(shape, generator=g) * 1e-3
        elif is_bn and key.endswith('weight'):
            value = torch.rand(shape, generator=g) + 0.5
        elif len(shape) >= 2 and not key.endswith('relative_position_bias_table'):
            value = torch.randn(shape, generator=g) / math.sqrt(math.prod(shape[1:]))
        else:  # biases, LayerNorm affine, relative position bias tables
            value = torch.randn(shape, generator=g) * 0.2
            if key.endswith('weight'):
                value += 1
        sd[key] = value
    return sd


def backbone_only(sd, prefix=''):
    """The backbone entries of an official cls state dict, optionally under a prefix."""
    return {prefix + k: v for k, v in sd.items() if not k.startswith(CLS_HEAD)}


# ---- the backbone forward ----

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


# True: BatchNorms normalise with the batch's statistics, as in a training step.
BN_TRAINING = False


def bn(x, sd, p):
    if BN_TRAINING:
        return F.batch_norm(x, None, None, sd[f'{p}.weight'], sd[f'{p}.bias'], True, 0.0, 1e-5)
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
    map (``PadBlock``), windows as ``LocalPermuteModule`` cuts them (``n (qh ph) (qw pw) c ->
    (ph pw) (n qh qw) c``: tokens row-major inside a window), then ``MHA_`` as torch's
    multi-head attention computes it on (tokens, windows, C): separate q / k / v projections, q
    scaled after its projection, heads split contiguously, logits + bias, softmax, out
    projection. ``pad_mask`` masks padded keys (not official; this package's option)."""
    b, h, w_, c = x.shape
    pad_h, pad_w = math.ceil(h / window) * window - h, math.ceil(w_ / window) * window - w_
    top, left = pad_h // 2, pad_w // 2
    xp = F.pad(x, (0, 0, left, pad_w - left, top, pad_h - top))
    valid = F.pad(torch.ones(1, h, w_, 1), (0, 0, left, pad_w - left, top, pad_h - top))
    hp, wp = xp.shape[1:3]
    qh, qw = hp // window, wp // window
    n, d = window * window, c // num_heads

    def to_windows(t):  # (B, Hp, Wp, C) -> (w*w, B*qh*qw, C)
        t = t.reshape(t.shape[0], qh, window, qw, window, t.shape[-1])
        return t.permute(2, 4, 0, 1, 3, 5).reshape(n, -1, t.shape[-1])

    tokens = to_windows(xp)
    q, k, v = (F.linear(tokens, sd[f'{p}.{name}.weight'], sd[f'{p}.{name}.bias'])
               for name in ('q_proj', 'k_proj', 'v_proj'))
    batch = tokens.shape[1]
    q = (q * d**-0.5).reshape(n, batch * num_heads, d).transpose(0, 1)
    k = k.reshape(n, batch * num_heads, d).transpose(0, 1)
    v = v.reshape(n, batch * num_heads, d).transpose(0, 1)
    logits = (q @ k.transpose(1, 2)).view(batch, num_heads, n, n)
    if with_rpe:
        table = sd[f'{p}.relative_position_bias_table']
        bias = table[relative_position_index(window).view(-1)].view(n, n, -1).permute(2, 0, 1)
        logits = logits + bias
    if pad_mask:
        keep = to_windows(valid.expand(b, -1, -1, -1))  # (w*w, B*qh*qw, 1)
        logits = logits.masked_fill(keep.permute(1, 2, 0).unsqueeze(1) == 0, float('-inf'))
    out = logits.softmax(-1).view(batch * num_heads, n, n) @ v
    out = out.transpose(0, 1).reshape(n, batch, c)
    out = F.linear(out, sd[f'{p}.out_proj.weight'], sd[f'{p}.out_proj.bias'])
    out = out.view(window, window, b, qh, qw, c).permute(2, 3, 0, 4, 1, 5).reshape(b, hp, wp, c)
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


def backbone(x, sd, num_heads, window, fork):
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


# ---- the classification head (cls fork) ----

def cls_head(feats, sd):
    """``incre_modules`` (depthwise bottlenecks), ``downsamp_modules``, ``final_layer``, pool,
    ``classifier``: the four branch maps -> logits."""
    y = bottleneck(feats[0], sd, 'incre_modules.0.0')
    for i in range(3):
        p = f'downsamp_modules.{i}'
        d = bn(conv(y, sd, f'{p}.0', stride=2), sd, f'{p}.1')
        d = F.relu(bn(conv(d, sd, f'{p}.2'), sd, f'{p}.3'))
        y = bottleneck(feats[i + 1], sd, f'incre_modules.{i + 1}.0') + d
    y = F.relu(bn(conv(y, sd, 'final_layer.0'), sd, 'final_layer.1'))
    y = F.avg_pool2d(y, kernel_size=y.shape[2:]).flatten(1)
    return F.linear(y, sd['classifier.weight'], sd['classifier.bias'])


# ---- openseg's OCR head (seg fork) ----

def resize_table(table, window):
    """A window-7 bias table ((2*7-1)^2, heads) for another window: each head's 13x13 grid
    resized bilinearly (align_corners=False), as the official seg code fine-tuned w13 / w15."""
    old, new = math.isqrt(table.shape[0]), 2 * window - 1
    grid = table.T.reshape(1, -1, old, old)
    grid = F.interpolate(grid, size=(new, new), mode='bilinear', align_corners=False)
    return grid.reshape(-1, new * new).T.contiguous()


def bn_stats(prefix, n, g):
    return {f'{prefix}.weight': torch.rand(n, generator=g) + 0.5,
            f'{prefix}.bias': torch.randn(n, generator=g) * 0.1,
            f'{prefix}.running_mean': torch.randn(n, generator=g) * 0.2,
            f'{prefix}.running_var': torch.rand(n, generator=g) + 0.5,
            f'{prefix}.num_batches_tracked': torch.tensor(10)}


def openseg_checkpoint(backbone_sd, num_classes=5, window=15):
    """openseg HRT_*_OCR_V2 state dict around an official cls backbone, as
    seg/lib/models/nets/hrt.py and modules/spatial_ocr_block.py build it: every head conv keeps
    nn.Conv2d's default bias, each BN sits in a BNReLU = Sequential(BN, ReLU), DataParallel's
    module. prefix; the window-7 bias tables resized to ``window`` as the seg code fine-tuned."""
    g = torch.Generator().manual_seed(1)
    sd = {}
    for k, v in backbone_only(backbone_sd).items():
        if k.endswith('relative_position_bias_table'):
            v = resize_table(v, window)
        elif k.endswith('relative_position_index'):
            v = relative_position_index(window)
        sd[f'backbone.{k}'] = v
    in_ch = sum(sd[f'backbone.stage4.0.branches.{i}.0.norm1.weight'].numel() for i in range(4))

    def conv_bn(name, cout, cin, k, with_bn=True):  # nn.Conv2d (bias) [+ BNReLU next]
        sd[f'{name}.weight'] = torch.randn(cout, cin, k, k, generator=g) * (cin * k * k)**-0.5
        sd[f'{name}.bias'] = torch.randn(cout, generator=g) * 0.3
        if with_bn:
            head, i = name.rsplit('.', 1)
            sd.update(bn_stats(f'{head}.{int(i) + 1}.0', cout, g))

    ocb = 'ocr_distri_head.object_context_block'
    conv_bn('conv3x3.0', 512, in_ch, 3)
    for branch in ('f_pixel', 'f_object'):
        conv_bn(f'{ocb}.{branch}.0', 256, 512, 1)
        conv_bn(f'{ocb}.{branch}.2', 256, 256, 1)
    conv_bn(f'{ocb}.f_down.0', 256, 512, 1)
    conv_bn(f'{ocb}.f_up.0', 512, 256, 1)
    conv_bn('ocr_distri_head.conv_bn_dropout.0', 512, 1024, 1)
    conv_bn('cls_head', num_classes, 512, 1, with_bn=False)
    conv_bn('aux_head.0', 512, in_ch, 3)
    conv_bn('aux_head.2', num_classes, 512, 1, with_bn=False)
    return {'config_dict': {'network': {'model_name': 'hrt_small_ocr_v2'}},
            'state_dict': {f'module.{k}': v for k, v in sd.items()}}


def openseg_heads(sd, feats):
    """openseg's HRT_*_OCR_V2 forward after the backbone, written out from its layout (eval)."""
    p = {k[len('module.'):]: v for k, v in sd.items()}
    h, w = feats[0].shape[-2:]
    x = torch.cat([feats[0]] + [F.interpolate(f, (h, w), mode='bilinear', align_corners=True)
                                for f in feats[1:]], 1)

    def conv_bn_relu(x, conv, norm, pad=0):
        x = F.conv2d(x, p[f'{conv}.weight'], p[f'{conv}.bias'], padding=pad)
        x = F.batch_norm(x, p[f'{norm}.running_mean'], p[f'{norm}.running_var'],
                         p[f'{norm}.weight'], p[f'{norm}.bias'], False, 0.0, 1e-5)
        return F.relu(x)

    aux = F.conv2d(conv_bn_relu(x, 'aux_head.0', 'aux_head.1.0', 1), p['aux_head.2.weight'],
                   p['aux_head.2.bias'])
    x = conv_bn_relu(x, 'conv3x3.0', 'conv3x3.1.0', 1)
    b = x.shape[0]
    probs = aux.flatten(2).softmax(-1)  # SpatialGather_Module, scale 1: B, K, HW
    context = (probs @ x.flatten(2).transpose(1, 2)).transpose(1, 2).unsqueeze(-1)  # B, C, K, 1
    o = 'ocr_distri_head.object_context_block'

    def two(x, name):
        x = conv_bn_relu(x, f'{o}.{name}.0', f'{o}.{name}.1.0')
        return conv_bn_relu(x, f'{o}.{name}.2', f'{o}.{name}.3.0')

    query = two(x, 'f_pixel').flatten(2).transpose(1, 2)
    key = two(context, 'f_object').flatten(2)
    value = conv_bn_relu(context, f'{o}.f_down.0', f'{o}.f_down.1.0').flatten(2).transpose(1, 2)
    sim = (query @ key * 256**-0.5).softmax(-1)
    ctx = (sim @ value).transpose(1, 2).reshape(b, -1, *x.shape[-2:])
    ctx = conv_bn_relu(ctx, f'{o}.f_up.0', f'{o}.f_up.1.0')
    out = conv_bn_relu(torch.cat([ctx, x], 1), 'ocr_distri_head.conv_bn_dropout.0',
                       'ocr_distri_head.conv_bn_dropout.1.0')
    return F.conv2d(out, p['cls_head.weight'], p['cls_head.bias']), aux
