"""HRFormer: High-Resolution Transformer for dense prediction (NeurIPS 2021).

HRNet's parallel multi-resolution branches, with each residual unit replaced by a transformer block:
local-window self-attention with a relative position bias, then a depthwise-conv FFN. Paper:
https://arxiv.org/abs/2110.09408; official code: https://github.com/HRNet/HRFormer (MIT), whose
module names this file keeps, so that official weights map by renames alone
(:mod:`mmhrformer.checkpoint`).

This file holds the architecture only. A forward pass: stem (two stride-2 3x3 convs) -> stage 1
(two bottlenecks) -> for stages 2-4: a transition opens a new branch at half resolution, then
modules of transformer blocks per branch, each module ending in a fusion across branches. Feature
maps stay in ``channels_last`` memory, so the (B, H, W, C) token view that LayerNorm and attention
need is a free permute.

Where faster kernels may replace the reference ops (all in :mod:`mmhrformer.layers`, same outputs
up to float32 rounding):

* every conv followed by a BatchNorm goes through ``conv_bn`` / ``ConvNormSequential``: at
  inference the BN is folded into the conv, and on a CPU the activation and residual add run in
  oneDNN's fused kernel (``set_fused_kernels(False)`` turns that off);
* the FFN's three conv-BN-GELU steps go through ``conv_bn_gelu_chain``: in training one autograd
  function that keeps only the conv outputs;
* attention is one ``F.scaled_dot_product_attention`` call per block, q / k / v one GEMM
  (``attention`` differentiates it by hand where SDPA would fall back to its math path, as in CPU
  training);
* weights derived from parameters (folded BNs, the stacked q / k / v, the gathered position bias)
  are kept between inference calls while the parameters are unchanged (``derived``); in training
  each module derives its blocks' stacked q / k / v and position biases together, in a few ops
  (``joined``, ``gather_position_biases``).
"""
from typing import Any, ClassVar, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils.checkpoint import checkpoint

from ...layers import (Bottleneck, ConvNormSequential, DropPath, attention, build_norm, conv_bn,
                       conv_bn_gelu_chain, count_batches, crop_tokens, derived, free_sizes,
                       gather_position_biases, is_exporting, joined, joint_position_index,
                       own_batch_counts, relative_position_index, resize_rpe_table, shape_of)

# Branch layout of stages 2-4; stage 1 (two 64-plane bottlenecks) is the same for every arch.
ARCH_ZOO: Dict[str, dict] = {
    'tiny': dict(num_modules=(1, 3, 2), channels=(18, 36, 72, 144), num_heads=(1, 2, 4, 8)),
    'small': dict(num_modules=(1, 4, 2), channels=(32, 64, 128, 256), num_heads=(1, 2, 4, 8)),
    'base': dict(num_modules=(1, 4, 2), channels=(78, 156, 312, 624), num_heads=(2, 4, 8, 16)),
}
ARCH_ALIASES = {'t': 'tiny', 's': 'small', 'b': 'base'}
ARCH_KEYS = {'num_modules', 'channels', 'num_heads'}
# A block's attention parameters as derived for a training step: the stacked q / k / v weight
# (3C, C) and bias (3C, ), and the position bias (1, heads, N, N) or None.
AttentionParams = Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]

BLOCKS_PER_MODULE = 2
MLP_RATIO = 4
STEM_CHANNELS = 64
STAGE1_PLANES = 64
STAGE1_BLOCKS = 2
UPSAMPLE_MODES = ('nearest', 'bilinear')
# The official initialisation (BaseModule copies it per instance).
OFFICIAL_INIT = [
    dict(type='Kaiming', layer='Conv2d', mode='fan_out', nonlinearity='relu'),
    dict(type='Constant', val=1, bias=0, layer=['_BatchNorm', 'GroupNorm', 'LayerNorm']),
    dict(type='TruncNormal', layer='Linear', std=0.02, bias=0.),
]


class WindowAttention(nn.Module):
    """Multi-head self-attention inside non-overlapping windows, with a relative position bias.

    The input is zero-padded to a multiple of the window, centred (official behaviour), and padded
    tokens take part in attention unless ``pad_mask`` is set, in which case they are masked as keys.

    Args:
        embed_dims (int): Channels C.
        num_heads (int): Heads; ``C // num_heads`` channels each, split contiguously.
        window_size (int): Window side w.
        with_rpe (bool): Add the relative position bias. The official pose code never did.
        pad_mask (bool): Mask padded tokens out of the keys.
    """

    def __init__(self, embed_dims: int, num_heads: int, window_size: int, with_rpe: bool = True,
                 pad_mask: bool = False):
        super().__init__()
        if embed_dims % num_heads:
            raise ValueError(f'HRFormer: {embed_dims} channels do not split into {num_heads} heads')
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.window_size = window_size
        self.with_rpe = with_rpe
        self.pad_mask = pad_mask
        self.q_proj = nn.Linear(embed_dims, embed_dims)
        self.k_proj = nn.Linear(embed_dims, embed_dims)
        self.v_proj = nn.Linear(embed_dims, embed_dims)
        self.out_proj = nn.Linear(embed_dims, embed_dims)
        if with_rpe:
            self.relative_position_bias_table = nn.Parameter(
                torch.zeros((2 * window_size - 1)**2, num_heads))
            self.register_buffer('relative_position_index', relative_position_index(window_size),
                                 persistent=False)

    def init_weights(self) -> None:
        if self.with_rpe:
            trunc_normal_(self.relative_position_bias_table, std=0.02)

    def projections(self) -> Tuple[nn.Linear, nn.Linear, nn.Linear]:
        """The q, k and v projections, in their stacking order."""
        return self.q_proj, self.k_proj, self.v_proj

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Window-7 ImageNet weights fine-tuned with another window (seg w13 / w15) load directly.
        key = prefix + 'relative_position_bias_table'
        if self.with_rpe and key in state_dict:
            table = state_dict[key]
            expected = self.relative_position_bias_table.shape
            if table.shape != expected and table.dim() == 2 and table.shape[1] == expected[1]:
                state_dict[key] = resize_rpe_table(table, self.window_size)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return (f'embed_dims={self.embed_dims}, num_heads={self.num_heads}, '
                f'window_size={self.window_size}, with_rpe={self.with_rpe}, '
                f'pad_mask={self.pad_mask}')

    def _attn_mask(self, pad: Tuple[int, int, int, int], padded_hw: Tuple[int, int],
                   batch: int, ref: torch.Tensor,
                   position_bias: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
        """Additive mask (1 or B*nW, heads or 1, N, N), or None when nothing is added."""
        w = self.window_size
        n = w * w
        mask = None
        if position_bias is not None:
            mask = position_bias.to(ref.dtype)
        elif self.with_rpe:
            table, index = self.relative_position_bias_table, self.relative_position_index
            # An embedding lookup: its gradient is one op, where indexing's is a zero fill and
            # an accumulating index_put.
            mask = derived(self, 'position_bias', (table, index), lambda: F.embedding(
                index.view(-1), table).view(n, n, -1).permute(2, 0, 1).unsqueeze(0).to(ref.dtype),
                ref.dtype)
        if self.pad_mask and (free_sizes() or any(pad)):
            top, bottom, left, right = pad
            hp, wp = padded_hw
            valid = torch.zeros(hp, wp, dtype=torch.bool, device=ref.device)
            valid[top:hp - bottom, left:wp - right] = True
            valid = valid.view(hp // w, w, wp // w, w).transpose(1, 2).reshape(-1, 1, 1, n)
            key_mask = torch.zeros(valid.shape, dtype=ref.dtype, device=ref.device)
            key_mask = key_mask.masked_fill(~valid, float('-inf'))  # nW, 1, 1, N
            mask = key_mask if mask is None else mask + key_mask
            mask = mask.expand(batch, *mask.shape[:1], *mask.shape[1:]).reshape(-1, *mask.shape[1:])
        return mask

    def forward(self, x: torch.Tensor, params: Optional[AttentionParams] = None) -> torch.Tensor:
        """
        Args:
            x (Tensor): Normalised tokens, shape (B, H, W, C).
            params (tuple, optional): The stacked q / k / v weight (3C, C) and bias (3C, ) and
                the position bias (1, heads, N, N) or None, as :class:`HRFormerModule` derives
                them for all its blocks at once in training; derived here when not given.

        Returns:
            Tensor: Shape (B, H, W, C).
        """
        b, h, w_in, _ = shape_of(x)
        c = self.embed_dims
        w = self.window_size
        pad_h, pad_w = -h % w, -w_in % w
        pad = (pad_h // 2, pad_h - pad_h // 2, pad_w // 2, pad_w - pad_w // 2)
        padded = free_sizes() or pad_h or pad_w
        if padded:
            x = F.pad(x, (0, 0, pad[2], pad[3], pad[0], pad[1]))
        hp, wp = h + pad_h, w_in + pad_w
        nh, nw = hp // w, wp // w
        head_dims = c // self.num_heads

        # The projection is per token, so it runs before the window partition: one GEMM for
        # q, k and v, then a single copy into (3, B*nW, heads, N, d).
        if params is None:
            projections = self.projections()
            weight, bias = derived(
                self, 'qkv_proj', [t for p in projections for t in (p.weight, p.bias)],
                lambda: (torch.cat([p.weight for p in projections]),
                         torch.cat([p.bias for p in projections])))
            position_bias = None
        else:
            weight, bias, position_bias = params
        qkv = F.linear(x, weight, bias)
        qkv = qkv.view(b, nh, w, nw, w, 3, self.num_heads, head_dims)
        qkv = qkv.permute(5, 0, 1, 3, 6, 2, 4, 7).reshape(3, b * nh * nw, self.num_heads, w * w,
                                                           head_dims)
        out = attention(qkv, self._attn_mask(pad, (hp, wp), b, qkv, position_bias))

        out = out.view(b, nh, nw, self.num_heads, w, w, head_dims)
        out = out.permute(0, 1, 4, 2, 5, 3, 6).reshape(b, hp, wp, c)
        if padded:
            out = crop_tokens(out, pad, (h, w_in))
        return self.out_proj(out)


class ConvFFN(nn.Module):
    """1x1 conv (C -> rC), 3x3 depthwise conv, 1x1 conv (rC -> C), each followed by BN and GELU.

    The GELU after the last BN is the official design, kept for weight compatibility.

    Args:
        embed_dims (int): Channels C.
        hidden_dims (int): Hidden channels rC.
        norm_cfg (dict): Norm of the convs.
        recompute (bool): In training, keep only the conv outputs and recompute BN + GELU in the
            backward pass (10 C kept per token instead of 18 C, for 7 more small ops).
    """

    def __init__(self, embed_dims: int, hidden_dims: int, norm_cfg: dict, recompute: bool = True):
        super().__init__()
        self.recompute = recompute
        self.fc1 = nn.Conv2d(embed_dims, hidden_dims, 1)
        self.norm1 = build_norm(norm_cfg, hidden_dims)
        self.dw3x3 = nn.Conv2d(hidden_dims, hidden_dims, 3, padding=1, groups=hidden_dims)
        self.norm2 = build_norm(norm_cfg, hidden_dims)
        self.fc2 = nn.Conv2d(hidden_dims, embed_dims, 1)
        self.norm3 = build_norm(norm_cfg, embed_dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        return conv_bn_gelu_chain(x, ((self.fc1, self.norm1), (self.dw3x3, self.norm2),
                                      (self.fc2, self.norm3)), self.recompute)


class HRFormerBlock(nn.Module):
    """Pre-norm transformer block: ``x + attn(LN(x))`` then ``x + ffn(LN(x))``.

    Args:
        embed_dims (int): Channels C.
        num_heads (int): Attention heads.
        window_size (int): Attention window side.
        drop_path (float): Stochastic depth rate of both residuals.
        with_rpe (bool): See :class:`WindowAttention`.
        pad_mask (bool): See :class:`WindowAttention`.
        norm_cfg (dict): Norm of the FFN convs.
        with_cp (bool): Recompute this block in the backward pass to save memory.
        recompute_ffn (bool): See :class:`ConvFFN`'s ``recompute``.
    """

    def __init__(self, embed_dims: int, num_heads: int, window_size: int, drop_path: float,
                 with_rpe: bool, pad_mask: bool, norm_cfg: dict, with_cp: bool = False,
                 recompute_ffn: bool = True):
        super().__init__()
        self.with_cp = with_cp
        self.norm1 = nn.LayerNorm(embed_dims, eps=1e-6)
        self.attn = WindowAttention(embed_dims, num_heads, window_size, with_rpe, pad_mask)
        self.norm2 = nn.LayerNorm(embed_dims, eps=1e-6)
        self.ffn = ConvFFN(embed_dims, embed_dims * MLP_RATIO, norm_cfg, recompute_ffn)
        self.drop_path = DropPath(drop_path)

    def _forward(self, x: torch.Tensor, attn_params: Optional[AttentionParams]) -> torch.Tensor:
        # In channels_last memory the (B, H, W, C) token view is a free permute.
        tokens = x.permute(0, 2, 3, 1)
        tokens = self.drop_path.add_to(tokens, self.attn(self.norm1(tokens), attn_params))
        ffn_in = self.norm2(tokens).permute(0, 3, 1, 2)
        tokens = self.drop_path.add_to(tokens, self.ffn(ffn_in).permute(0, 2, 3, 1))
        return tokens.permute(0, 3, 1, 2)

    def forward(self, x: torch.Tensor,
                attn_params: Optional[AttentionParams] = None) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W); ``attn_params``: see :class:`WindowAttention`."""
        if self.with_cp and x.requires_grad:
            return checkpoint(self._forward, x, attn_params, use_reentrant=False)
        return self._forward(x, attn_params)


class HRFormerModule(nn.Module):
    """Parallel branches of transformer blocks, then HRNet-style fusion across resolutions.

    Fusion into branch i sums every branch j: j < i goes through strided depthwise + pointwise
    conv steps, j > i through a 1x1 conv + BN and an upsampling to branch i's exact size, then ReLU.

    The FFNs of the two highest-resolution branches recompute BN + GELU in the backward pass
    (:class:`ConvFFN`): each branch holds half the activations of the one above it (a quarter of
    the tokens, twice the channels), so the first two hold about three quarters of them, and the
    other branches keep their activations and skip the recompute's extra ops (HRFormer-S's
    training step: 1.53x less activation memory than MMPose's; recomputing on the first branch
    alone would leave 1.31x).

    Args:
        channels (Sequence[int]): Channels per branch, high to low resolution.
        num_heads (Sequence[int]): Heads per branch.
        window_size (int): Attention window side.
        drop_paths (Sequence[float]): Rate of each block position (shared by all branches).
        upsample_mode (str): ``'nearest'`` (by 2^(j-i), then a bilinear align_corners=True
            resize to the exact size: official cls / seg) or ``'bilinear'`` (bilinear by
            2^(j-i), then a bilinear align_corners=False resize to the exact size: official
            pose; MMPose 1.x at inputs divisible by 32).
        fuse_outputs (Sequence[int], optional): Branches to fuse into; the others are left out
            (``None``) and their outputs are not computed. Default: all.
    """

    def __init__(self, channels: Sequence[int], num_heads: Sequence[int], window_size: int,
                 drop_paths: Sequence[float], with_rpe: bool, pad_mask: bool, upsample_mode: str,
                 norm_cfg: dict, with_cp: bool, fuse_outputs: Optional[Sequence[int]] = None):
        super().__init__()
        self.upsample_mode = upsample_mode
        self.branches = nn.ModuleList(
            nn.Sequential(*(HRFormerBlock(ch, heads, window_size, dp, with_rpe, pad_mask,
                                          norm_cfg, with_cp, recompute_ffn=i < 2)
                            for dp in drop_paths))
            for i, (ch, heads) in enumerate(zip(channels, num_heads)))
        if with_rpe:
            self.register_buffer(
                'position_bias_index',
                joint_position_index(window_size, [h for h in num_heads for _ in drop_paths]),
                persistent=False)
        fuse_outputs = range(len(channels)) if fuse_outputs is None else fuse_outputs
        self.fuse_layers = self._make_fuse_layers(channels, fuse_outputs,
                                                  norm_cfg) if len(channels) > 1 else None

    @staticmethod
    def _make_fuse_layers(channels: Sequence[int], fuse_outputs: Sequence[int],
                          norm_cfg: dict) -> nn.ModuleList:
        fuse_layers = nn.ModuleList()
        for i, out_ch in enumerate(channels):
            if i not in fuse_outputs:
                fuse_layers.append(None)
                continue
            layer = nn.ModuleList()
            for j, in_ch in enumerate(channels):
                if j > i:
                    layer.append(ConvNormSequential(nn.Conv2d(in_ch, out_ch, 1, bias=False),
                                                    build_norm(norm_cfg, out_ch)))
                elif j == i:
                    layer.append(None)
                else:
                    steps = []
                    for k in range(i - j):
                        last = k == i - j - 1
                        step_out = out_ch if last else in_ch
                        step = [
                            nn.Conv2d(in_ch, in_ch, 3, 2, 1, groups=in_ch, bias=False),
                            build_norm(norm_cfg, in_ch),
                            nn.Conv2d(in_ch, step_out, 1, bias=False),
                            build_norm(norm_cfg, step_out),
                        ]
                        if not last:
                            step.append(nn.ReLU())
                        steps.append(ConvNormSequential(*step))
                    layer.append(nn.Sequential(*steps))
            fuse_layers.append(layer)
        return fuse_layers

    def _upsample(self, x: torch.Tensor, factor: int, size: Tuple[int, int]) -> torch.Tensor:
        """Both official forks: upsample by the integer factor, then resize to the exact size.

        The second step only changes anything where a branch is not exactly half the one above
        (inputs not divisible by 32); there eager mode skips it, since a bilinear resize to the
        same size is the identity for either ``align_corners``.
        """
        bilinear = self.upsample_mode == 'bilinear'
        x = F.interpolate(x, scale_factor=float(factor), mode=self.upsample_mode,
                          align_corners=False if bilinear else None)
        if free_sizes() or shape_of(x)[-2:] != tuple(size):
            # cls / seg resize with align_corners=True, pose with False.
            x = F.interpolate(x, size=size, mode='bilinear', align_corners=not bilinear)
        return x

    def _joint_attention_params(self) -> List[AttentionParams]:
        """Every block's attention parameters, derived for all blocks by a few ops
        (:mod:`~mmhrformer.layers.joined_params`), in block order (branch by branch)."""
        attns = [block.attn for branch in self.branches for block in branch]
        views = joined([[p.weight for p in a.projections()] for a in attns]
                       + [[p.bias for p in a.projections()] for a in attns])
        weights = [v.view(-1, a.embed_dims) for v, a in zip(views, attns)]
        biases = views[len(attns):]
        if hasattr(self, 'position_bias_index'):
            position_biases = gather_position_biases(
                [a.relative_position_bias_table for a in attns], self.position_bias_index,
                [a.num_heads for a in attns])
        else:
            position_biases = [None] * len(attns)
        return list(zip(weights, biases, position_biases))

    def forward(self, xs: List[torch.Tensor]) -> List[torch.Tensor]:
        # In training the blocks' derived weights are part of the graph, once per step: derive
        # them for all blocks at once (at inference each block keeps its own between calls).
        params = iter(self._joint_attention_params() if torch.is_grad_enabled()
                      and not is_exporting() else [])
        outs = []
        for branch, x in zip(self.branches, xs):
            for block in branch:
                x = block(x, next(params, None))
            outs.append(x)
        xs = outs
        if self.fuse_layers is None:
            return xs
        outs = []
        for i, fuse in enumerate(self.fuse_layers):
            if fuse is None:
                outs.append(None)
                continue
            size = shape_of(xs[i])[-2:]
            y = xs[i]
            for j, x in enumerate(xs):
                if j > i:
                    y = y + self._upsample(fuse[j](x), 2**(j - i), size)
                elif j < i:
                    y = y + fuse[j](x)
            outs.append(F.relu(y))
        return outs


class HRFormer(BaseModule):
    """HRFormer backbone.

    A conv stem (stride 4) and stage 1 of bottlenecks, then stages 2-4 of :class:`HRFormerModule`
    with 2, 3 and 4 branches at strides 4, 8, 16, 32.

    Args:
        arch (str | dict): ``'tiny'``, ``'small'``, ``'base'`` (or ``'t'``, ``'s'``, ``'b'``), or
            a dict with ``num_modules`` (3 ints, stages 2-4), ``channels`` (4 ints) and
            ``num_heads`` (4 ints). Default: ``'small'``.
        in_channels (int): Input image channels. Default: 3.
        window_size (int | Sequence[int]): Attention window, one for all stages or one per stage
            2-4. Default: 7.
        drop_path_rate (float): Stochastic depth rate of the last block, linear from 0 over the
            transformer blocks. Default: 0.
        with_rpe (bool): Use the relative position bias. Official pose weights need False.
            Default: True.
        upsample_mode (str): Fusion upsampling, ``'nearest'`` (official cls / seg weights) or
            ``'bilinear'`` (official pose / MMPose weights). Default: ``'nearest'``.
        pad_mask (bool): Mask the window padding out of attention; False reproduces the official
            model. Default: False.
        out_indices (Sequence[int]): Branches to return; the last fusion is built for these only
            (``(0, )`` is the layout of the official and MMPose pose checkpoints). Default: (0, 1, 2, 3).
        frozen_stages (int): Stages to freeze (stop gradients, eval mode); -1 freezes nothing,
            0 the stem, k >= 1 the stem and stages 1..k. Default: -1.
        norm_eval (bool): Keep every BatchNorm in eval mode while training. Default: False.
        with_cp (bool): Gradient checkpointing per transformer block. Default: False.
        norm_cfg (dict): Norm of the conv layers. Default: ``dict(type='BN')``.
        init_cfg (dict | list[dict], optional): MMEngine init config;
            ``dict(type='Pretrained', checkpoint=..., prefix=...)`` goes through
            ``weights_adapter`` when one is set.

    Example:
        >>> model = HRFormer(arch='small').eval()
        >>> outs = model(torch.rand(1, 3, 97, 130))
        >>> [tuple(o.shape) for o in outs]
        [(1, 32, 25, 33), (1, 64, 13, 17), (1, 128, 7, 9), (1, 256, 4, 5)]
    """

    #: Checkpoint layouts are not the architecture's business: :mod:`mmhrformer.checkpoint`,
    #: which sits above the models, sets this when the package is imported. It then maps other
    #: layouts' names on every load (``adapt_state(backbone, state_dict, prefix)``), stops a load
    #: that leaves the backbone incomplete, and reads ``init_cfg``'s ``Pretrained`` file
    #: (``load_pretrained(backbone, checkpoint=..., prefix=...)``). ``None``: this package's own
    #: names only, loaded as by any ``nn.Module``.
    weights_adapter: ClassVar[Optional[Any]] = None

    def __init__(self,
                 arch: Union[str, dict] = 'small',
                 in_channels: int = 3,
                 window_size: Union[int, Sequence[int]] = 7,
                 drop_path_rate: float = 0.,
                 with_rpe: bool = True,
                 upsample_mode: str = 'nearest',
                 pad_mask: bool = False,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 norm_cfg: dict = dict(type='BN', requires_grad=True),
                 init_cfg: Optional[Union[dict, List[dict]]] = None):
        super().__init__(init_cfg=OFFICIAL_INIT if init_cfg is None else init_cfg)
        self.arch_settings = self._parse_arch(arch)
        if not isinstance(in_channels, int) or in_channels < 1:
            raise ValueError(f'HRFormer: in_channels must be a positive int, got {in_channels!r}')
        if upsample_mode not in UPSAMPLE_MODES:
            raise ValueError(f'HRFormer: upsample_mode must be one of {UPSAMPLE_MODES}, '
                             f'got {upsample_mode!r}')
        if isinstance(window_size, int):
            window_size = (window_size, ) * 3
        window_size = tuple(window_size)
        if len(window_size) != 3 or not all(isinstance(w, int) and w > 0 for w in window_size):
            raise ValueError('HRFormer: window_size must be a positive int or 3 of them '
                             f'(stages 2-4), got {window_size!r}')
        if not 0 <= drop_path_rate < 1:
            raise ValueError(f'HRFormer: drop_path_rate must be in [0, 1), got {drop_path_rate}')
        if not out_indices or not all(0 <= i < 4 for i in out_indices):
            raise ValueError(f'HRFormer: out_indices must be in 0..3, got {out_indices!r}')
        if not -1 <= frozen_stages <= 4:
            raise ValueError(f'HRFormer: frozen_stages must be in -1..4, got {frozen_stages}')
        self.in_channels = in_channels
        self.window_size = window_size
        self.out_indices = tuple(out_indices)
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        channels = self.arch_settings['channels']
        num_heads = self.arch_settings['num_heads']
        num_modules = self.arch_settings['num_modules']
        self.out_channels = tuple(channels[i] for i in self.out_indices)

        self.conv1 = nn.Conv2d(in_channels, STEM_CHANNELS, 3, stride=2, padding=1, bias=False)
        self.bn1 = build_norm(norm_cfg, STEM_CHANNELS)
        self.conv2 = nn.Conv2d(STEM_CHANNELS, STEM_CHANNELS, 3, stride=2, padding=1, bias=False)
        self.bn2 = build_norm(norm_cfg, STEM_CHANNELS)
        stage1_channels = STAGE1_PLANES * Bottleneck.expansion
        self.layer1 = nn.Sequential(*(Bottleneck(STEM_CHANNELS if i == 0 else stage1_channels,
                                                 STAGE1_PLANES, norm_cfg)
                                      for i in range(STAGE1_BLOCKS)))

        num_blocks = [n * BLOCKS_PER_MODULE for n in num_modules]
        rates = torch.linspace(0, drop_path_rate, sum(num_blocks)).tolist()
        prev_channels = [stage1_channels]
        for s in range(3):  # stages 2, 3, 4 have s + 2 branches
            stage_channels = channels[:s + 2]
            setattr(self, f'transition{s + 1}',
                    self._make_transition(prev_channels, stage_channels, norm_cfg))
            stage_rates = rates[sum(num_blocks[:s]):sum(num_blocks[:s + 1])]
            # The very last fusion only feeds the returned branches (HRNet's multiscale_output:
            # official pose checkpoints hold stage4's last fuse layers for branch 0 alone).
            modules = [
                HRFormerModule(stage_channels, num_heads[:s + 2], window_size[s],
                               stage_rates[m * BLOCKS_PER_MODULE:(m + 1) * BLOCKS_PER_MODULE],
                               with_rpe, pad_mask, upsample_mode, norm_cfg, with_cp,
                               self.out_indices if s == 2 and m == num_modules[s] - 1 else None)
                for m in range(num_modules[s])
            ]
            setattr(self, f'stage{s + 2}', nn.Sequential(*modules))
            prev_channels = stage_channels
        own_batch_counts(self)
        self._freeze_stages()

    @staticmethod
    def _parse_arch(arch: Union[str, dict]) -> dict:
        if isinstance(arch, str):
            name = ARCH_ALIASES.get(arch.lower(), arch.lower())
            if name not in ARCH_ZOO:
                raise KeyError(f'HRFormer: unknown arch {arch!r}; choose one of '
                               f'{sorted(ARCH_ZOO)} or pass a dict with keys {sorted(ARCH_KEYS)}')
            return {k: tuple(v) for k, v in ARCH_ZOO[name].items()}
        if not isinstance(arch, dict) or set(arch) != ARCH_KEYS:
            raise ValueError(f'HRFormer: a custom arch must be a dict with exactly the keys '
                             f'{sorted(ARCH_KEYS)}, got {arch!r}')
        settings = {k: tuple(v) for k, v in arch.items()}
        if len(settings['num_modules']) != 3 or len(settings['channels']) != 4 or len(
                settings['num_heads']) != 4:
            raise ValueError('HRFormer: a custom arch needs 3 num_modules (stages 2-4), 4 channels '
                             f'and 4 num_heads, got {arch!r}')
        return settings

    @staticmethod
    def _make_transition(prev: Sequence[int], cur: Sequence[int], norm_cfg: dict) -> nn.ModuleList:
        """Adapts the existing branches' channels and opens a new branch from the lowest one."""
        layers = nn.ModuleList()
        for i, out_ch in enumerate(cur):
            if i < len(prev):
                layers.append(None if prev[i] == out_ch else ConvNormSequential(
                    nn.Conv2d(prev[i], out_ch, 3, 1, 1, bias=False), build_norm(norm_cfg, out_ch),
                    nn.ReLU()))
            else:
                layers.append(nn.Sequential(ConvNormSequential(
                    nn.Conv2d(prev[-1], out_ch, 3, 2, 1, bias=False), build_norm(norm_cfg, out_ch),
                    nn.ReLU())))
        return layers

    def init_weights(self) -> None:
        if (self.weights_adapter is not None and isinstance(self.init_cfg, dict)
                and self.init_cfg.get('type') == 'Pretrained'):
            self.weights_adapter.load_pretrained(
                self, **{k: v for k, v in self.init_cfg.items() if k != 'type'})
            self._is_init = True
            return
        super().init_weights()
        for m in self.modules():
            if isinstance(m, WindowAttention):
                m.init_weights()

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        if self.weights_adapter is not None:
            self.weights_adapter.adapt_state(self, state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _freeze_stages(self) -> None:
        frozen = []
        if self.frozen_stages >= 0:
            frozen += [self.conv1, self.bn1, self.conv2, self.bn2]
        if self.frozen_stages >= 1:
            frozen.append(self.layer1)
        for s in range(2, self.frozen_stages + 1):
            frozen += [getattr(self, f'transition{s - 1}'), getattr(self, f'stage{s}')]
        for module in frozen:
            module.eval()
            for p in module.parameters():
                p.requires_grad = False

    def train(self, mode: bool = True) -> 'HRFormer':
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """
        Args:
            x (Tensor): Images, shape (B, in_channels, H, W), any H, W >= 32.

        Returns:
            tuple[Tensor]: For each of ``out_indices``, (B, C_i, ceil(H / 2^(i+2)), ...).
        """
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f'HRFormer: expected input (B, {self.in_channels}, H, W), '
                             f'got shape {tuple(x.shape)}')
        if x.shape[-2] < 32 or x.shape[-1] < 32:
            raise ValueError(f'HRFormer: input must be at least 32x32 (stride 32), '
                             f'got {tuple(x.shape[-2:])}')
        if self.training:
            count_batches(self)
        x = x.contiguous(memory_format=torch.channels_last)
        x = conv_bn(x, self.conv1, self.bn1, 'relu')
        x = conv_bn(x, self.conv2, self.bn2, 'relu')
        xs = [self.layer1(x)]
        for s in range(3):
            transition = getattr(self, f'transition{s + 1}')
            xs = [xs[i] if i < len(xs) and layer is None else layer(xs[min(i, len(xs) - 1)])
                  for i, layer in enumerate(transition)]
            xs = getattr(self, f'stage{s + 2}')(xs)
        return tuple(xs[i].contiguous() for i in self.out_indices)
