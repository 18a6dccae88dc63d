"""Tells whoever turns on MMEngine's ``compile`` what it costs for HRFormer, before it is paid.

``torch.compile`` of an HRFormer model is correct (one graph per mode, no recompilation at a fixed
input size), but on a CPU it does not pay: eager inference already runs oneDNN's fused kernels, and
the compiled training step is slower than eager. Figures from ``benchmarks/backbone_speed.py
--compile`` (HRFormer-S, 4x3x256x192, fp32, 2-core x86 CPU, torch 2.14) are in :data:`CPU_FIGURES`.
No GPU figures have been measured for this package yet.
"""
import logging

from mmengine.hooks import Hook
from mmengine.logging import print_log

from ..registry import HOOKS

CPU_FIGURES = ('on a 2-core CPU (HRFormer-S, 4x3x256x192), compiling the training step took '
               '486 s and the compiled step then ran 1.15x slower than eager (1831 vs 1594 ms); '
               'inference compiled in 148 s and ran at eager speed (eager already fuses conv + BN '
               '+ activation)')


@HOOKS.register_module()
class CompileAdviceHook(Hook):
    """Logs a warning with the measured cost of ``torch.compile`` when the config turns it on.

    The shipped configs include it (``custom_hooks``); it only reads the config and the model's
    device, and changes nothing.
    """

    priority = 'VERY_LOW'

    def before_run(self, runner) -> None:
        compile_cfg = runner.cfg.get('compile', None)
        if not compile_cfg:
            return
        device = next(runner.model.parameters()).device.type
        if device == 'cpu':
            advice = (f'torch.compile is on and the model runs on the CPU: {CPU_FIGURES}. Expect '
                      'no gain; `--cfg-options compile=False` turns it off.')
        else:
            advice = (f'torch.compile is on ({device}): the first iterations compile for minutes. '
                      f'It has not been measured on a {device} for HRFormer yet; {CPU_FIGURES}.')
        print_log(f'HRFormer: {advice}', logger='current', level=logging.WARNING)
