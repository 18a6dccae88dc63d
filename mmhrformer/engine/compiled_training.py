"""Compiled training: what MMEngine's ``compile`` switch becomes for an HRFormer model.

MMEngine 0.10.7 compiles the model's whole ``train_step`` (``Runner._maybe_compile``, after the
hooks' ``before_run``): the data preprocessor, the losses with their numpy metrics, the backward
pass and the optimizer step in one frame, which breaks into many graphs and records none of the
backward. What captures whole is the tensor part of the model: the backbone, the neck and the
heads' ``forward`` (HRFormer is one dynamo graph in training). :func:`compile_for_training`
compiles those, in training mode only: validation and testing run eager, so that eval mode and
other input sizes cost no recompilation.

:func:`plan_compile` decides what a ``compile`` setting becomes on a device:

- ``True`` on a CPU: eager. Compiling HRFormer-S's training step there took 486 s and the step ran
  1.15x slower than eager (docs/speed.md); eager already runs oneDNN's fused kernels.
- ``True`` on CUDA: inductor's fused kernels replayed as CUDA graphs (``mode='reduce-overhead'``,
  CUDA graph trees: the forward and the backward graphs of every compiled part in one memory pool,
  parameters and buffers as static inputs, so BN statistics are updated in place inside the
  graphs). The training step is bound by kernel launches on a GPU (HRFormer-S, H200, 32x3x256x192
  fp32: 282 ms a step for about 80 ms of device work), which CUDA graphs remove. ``dynamic=False``:
  a new input size (the last, smaller batch of an epoch) is one more static graph, not a slower
  dynamic one for every size.
- A dict: exactly those ``torch.compile`` options, on any device, applied to the same parts.
"""
import dataclasses
import inspect
from typing import Any, List, Optional, Tuple

import torch
from mmengine.model import is_model_wrapper
from torch import nn
from torch.nn.parallel import DistributedDataParallel

CUDA_OPTIONS = dict(mode='reduce-overhead', dynamic=False)
# The tensor-to-tensor parts of MMSeg's, MMPose's and MMPretrain's models; a ModuleList (MMSeg's
# cascade of decode heads) contributes each of its modules.
PARTS = ('backbone', 'neck', 'decode_head', 'auxiliary_head', 'head')
CUDAGRAPH_MODES = ('reduce-overhead', 'max-autotune')
CPU_FIGURES = ('on a 2-core CPU (HRFormer-S, 4x3x256x192) compiling the training step took 486 s '
               'and the compiled step then ran 1.15x slower than eager (1831 vs 1594 ms); '
               'compiled inference ran at eager speed (docs/speed.md)')


@dataclasses.dataclass(frozen=True)
class CompilePlan:
    """What a ``compile`` setting becomes on a device.

    Attributes:
        options (dict | None): ``torch.compile`` keyword arguments for the model's parts, or None
            to train eager.
        message (str): The one line that says so, empty when ``compile`` is off.
    """
    options: Optional[dict]
    message: str

    @property
    def uses_cudagraphs(self) -> bool:
        """Whether the compiled parts are replayed as CUDA graphs (inductor's CUDA graph trees)."""
        if self.options is None or self.options.get('backend', 'inductor') != 'inductor':
            return False
        flag = (self.options.get('options') or {}).get('triton.cudagraphs')
        return flag if flag is not None else self.options.get('mode') in CUDAGRAPH_MODES


def plan_compile(compile_cfg: Any, device_type: str) -> CompilePlan:
    """Turns a config's ``compile`` value into what is done on ``device_type``.

    Args:
        compile_cfg: The config's ``compile``: None or False (off), True (the form that pays on the
            device), or a dict of ``torch.compile`` options (honoured as given).
        device_type (str): Where the model's parameters are, e.g. ``'cpu'``, ``'cuda'``.

    Returns:
        CompilePlan: The options to compile with (None: eager) and the line to log.

    Raises:
        ValueError: ``compile_cfg`` is of another type, or the dict has a key that
            ``torch.compile`` does not take.
    """
    if compile_cfg is None or compile_cfg is False:
        return CompilePlan(None, '')
    if isinstance(compile_cfg, dict):
        allowed = sorted(set(inspect.signature(torch.compile).parameters) - {'model'})
        unknown = sorted(set(compile_cfg) - set(allowed))
        if unknown:
            raise ValueError(f'compile: torch.compile takes no option {unknown[0]!r}; its options '
                             f'are {", ".join(allowed)}')
        options = dict(compile_cfg)
        note = f'; {CPU_FIGURES}' if device_type == 'cpu' else ''
        return CompilePlan(options, f'compile={options}: torch.compile with these options, '
                           f'training mode only{note}.')
    if compile_cfg is not True:
        raise ValueError('compile: expected True, False or a dict of torch.compile options, got '
                         f'{compile_cfg!r}')
    if device_type == 'cpu':
        return CompilePlan(None, f'compile=True: training eager on the CPU, where it is faster: '
                           f'{CPU_FIGURES}. `compile=dict()` compiles anyway.')
    if device_type == 'cuda':
        args = ', '.join(f'{k}={v!r}' for k, v in CUDA_OPTIONS.items())
        return CompilePlan(dict(CUDA_OPTIONS), (
            f'compile=True on CUDA: torch.compile({args}) in training mode, inductor kernels '
            'replayed as CUDA graphs; validation eager. Not measured on a GPU for HRFormer yet '
            '(benchmarks/gpu_check.py); the first iterations compile for minutes.'))
    return CompilePlan({}, f'compile=True on {device_type}: torch.compile with its defaults, '
                       'training mode only; not measured on this device for HRFormer.')


def compile_for_training(model: nn.Module, options: dict) -> List[str]:
    """Compiles the model's backbone, neck and heads, run compiled in training mode only.

    Each part's ``forward`` is replaced by one that calls the compiled forward while the part is in
    training mode and the eager one otherwise. The parts stay the same modules: their
    ``state_dict`` keys do not change, so checkpoints load into an eager model. A part compiled
    before is left as it is.

    Args:
        model (nn.Module): An MMSeg, MMPose or MMPretrain model, or a model wrapper (DDP) of one.
        options (dict): ``torch.compile`` keyword arguments.

    Returns:
        list[str]: The names of the compiled parts, e.g. ``['backbone', 'decode_head.0']``.
    """
    model = model.module if is_model_wrapper(model) else model
    compiled = []
    for name in PARTS:
        part = getattr(model, name, None)
        if part is None:
            continue
        named = ([(f'{name}.{i}', m) for i, m in enumerate(part)]
                 if isinstance(part, nn.ModuleList) else [(name, part)])
        for part_name, module in named:
            if not getattr(module.forward, 'compiled_for_training', False):
                module.forward = _training_forward(module, options)
            compiled.append(part_name)
    return compiled


def _training_forward(module: nn.Module, options: dict):
    eager = module.forward
    compiled = torch.compile(eager, **options)

    def forward(*args, **kwargs):
        # Eval mode (validation, testing, the inferencers) would otherwise compile a graph per
        # input size; inference compiled has not paid anywhere it was measured.
        return (compiled if module.training else eager)(*args, **kwargs)

    forward.compiled_for_training = True
    return forward


def stop_buffer_broadcast(model: nn.Module) -> Optional[str]:
    """Turns off DDP's broadcast of rank 0's buffers before every forward pass.

    pytorch#139207: under it, training-mode BatchNorm made ``reduce-overhead`` skip CUDA graphs
    ("mutated inputs"), a more than 10x loss. MMEngine's default wrapper already has it off.

    Args:
        model (nn.Module): The runner's model, wrapped or not.

    Returns:
        str | None: The DDP attribute turned off, None when nothing was broadcasting.
    """
    if not isinstance(model, DistributedDataParallel):
        return None
    # torch >= 2.12 names it forward_sync_buffers, and broadcast_buffers before.
    flag = 'forward_sync_buffers' if hasattr(model, 'forward_sync_buffers') else (
        'broadcast_buffers')
    if not getattr(model, flag):
        return None
    setattr(model, flag, False)
    return flag


def cudagraph_counts(device_index: Optional[int] = None) -> Tuple[int, int]:
    """How many compiled graphs were recorded as CUDA graphs, and how many were not.

    Inductor counts a compiled graph that it runs without CUDA graphs (launching its kernels one by
    one) in ``torch._dynamo.utils.counters['inductor']['cudagraph_skips']``; ``TORCH_LOGS=
    cudagraphs`` prints why (e.g. "skipping cudagraphs due to mutated inputs"). The recorded ones
    are the nodes of the device's CUDA graph tree.

    Args:
        device_index (int | None): The CUDA device; None: the current one.

    Returns:
        tuple[int, int]: (recorded, skipped), over the whole process so far.
    """
    from torch._dynamo.utils import counters
    from torch._inductor import cudagraph_trees
    skipped = counters['inductor']['cudagraph_skips']
    if device_index is None:
        if not torch.cuda.is_initialized():
            return 0, skipped
        # torch 2.11's get_manager takes no None
        device_index = torch.cuda.current_device()
    manager = cudagraph_trees.get_manager(device_index, create_if_none_exists=False)
    recorded = 0
    # The tree's nodes are not public API: counted when the attributes are there, else 0.
    pending = [n for nodes in getattr(manager, 'roots', {}).values() for n in nodes]
    while pending:
        node = pending.pop()
        recorded += 1
        pending += [c for nodes in getattr(node, 'children', {}).values() for c in nodes]
    return recorded, skipped
