"""Runner-side helpers for MMEngine's training loops: compiled training behind ``compile``."""
from .compile_advice import CompileAdviceHook
from .compiled_training import (CompilePlan, compile_for_training, cudagraph_counts,
                                plan_compile, stop_buffer_broadcast)

__all__ = [
    'CompileAdviceHook', 'CompilePlan', 'compile_for_training', 'cudagraph_counts', 'plan_compile',
    'stop_buffer_broadcast'
]
