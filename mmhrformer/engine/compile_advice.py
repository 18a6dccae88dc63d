"""The hook behind MMEngine's ``compile`` switch: compiled training in the form that pays.

Every shipped config lists it (``custom_hooks``). MMEngine 0.10.7's ``Runner.train`` calls the
hooks' ``before_run``, loads or resumes, then compiles ``model.train_step`` with the config's
``compile`` (``Runner._maybe_compile``), then runs the loop, whose first call is ``before_train``.
This hook takes ``compile`` out of the config in ``before_run`` (MMEngine then compiles nothing),
and in ``before_train`` does what :func:`~mmhrformer.engine.compiled_training.plan_compile` decides
for the device, saying so in one line: eager on a CPU for ``compile=True``; on CUDA the backbone,
neck and heads compiled with inductor and replayed as CUDA graphs; a dict's options as given.
``after_run`` puts ``compile`` back into the config.
"""
import logging

import torch
from mmengine.hooks import Hook
from mmengine.logging import print_log

from ..registry import HOOKS
from .compiled_training import (compile_for_training, cudagraph_counts, plan_compile,
                                stop_buffer_broadcast)

# CUDA graph trees warm up on a graph's first call and record on its second: by the end of the
# third iteration every training graph has been replayed or skipped.
REPORT_AFTER_ITERS = 3


@HOOKS.register_module()
class CompileAdviceHook(Hook):
    """Applies the config's ``compile`` to training in the form that pays on the model's device.

    ``compile=True`` trains eager on a CPU (compiled training is slower there, after minutes of
    compiling) and, on CUDA, compiles the model's backbone, neck and heads with
    ``mode='reduce-overhead'`` (CUDA graphs); a dict of ``torch.compile`` options is applied as
    given to the same parts. Compiled parts run compiled in training mode only. Under CUDA graphs,
    DDP's per-forward buffer broadcast is turned off (pytorch#139207) and, after the first
    iterations, a line says how many graphs were recorded as CUDA graphs and how many were not.
    """

    priority = 'VERY_LOW'

    def __init__(self) -> None:
        self._taken = None
        self._plan = None
        self._device = None
        self._first_iter = None

    def before_run(self, runner) -> None:
        self._device = next(runner.model.parameters()).device
        self._plan = plan_compile(runner.cfg.get('compile', None), self._device.type)
        if self._plan.message:
            # Left in the config, MMEngine would compile the whole train_step after this hook.
            self._taken = runner.cfg.compile
            runner.cfg.compile = None

    def before_train(self, runner) -> None:
        if not self._plan.message:
            return
        message = self._plan.message
        if self._plan.options is not None:
            parts = compile_for_training(runner.model, self._plan.options)
            message += f' Compiled: {", ".join(parts)}.'
            flag = self._plan.uses_cudagraphs and stop_buffer_broadcast(runner.model)
            if flag:
                print_log(
                    f'HRFormer: DDP {flag} turned off for CUDA graphs (BN under DDP\'s buffer '
                    'broadcast made reduce-overhead skip them, pytorch#139207); BN statistics stay '
                    'per process as with MMEngine\'s default wrapper (SyncBN keeps them equal, '
                    'SyncBuffersHook averages plain BN\'s).', logger='current',
                    level=logging.WARNING)
        # On a CPU compiling does not pay: said as a warning, whether it compiles or not.
        level = logging.WARNING if self._device.type == 'cpu' else logging.INFO
        print_log(f'HRFormer: {message}', logger='current', level=level)
        self._first_iter = runner.iter

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if self._plan.uses_cudagraphs:
            # Outputs of the last step's graphs may now be overwritten: a new step begins.
            torch.compiler.cudagraph_mark_step_begin()

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if (not self._plan.uses_cudagraphs or self._device.type != 'cuda'
                or runner.iter + 1 != self._first_iter + REPORT_AFTER_ITERS):
            return
        recorded, skipped = cudagraph_counts(self._device.index)
        if skipped:
            print_log(f'HRFormer: CUDA graphs: {recorded} recorded, {skipped} compiled graphs run '
                      'without them (kernels launched one by one, much slower); TORCH_LOGS='
                      'cudagraphs names why.', logger='current', level=logging.WARNING)
        else:
            print_log(f'HRFormer: CUDA graphs: {recorded} recorded and replayed, none skipped.',
                      logger='current', level=logging.INFO)

    def after_run(self, runner) -> None:
        if self._plan is not None and self._plan.message:
            runner.cfg.compile = self._taken
