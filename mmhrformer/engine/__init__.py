"""Runner-side helpers for MMEngine's training loops."""
from .compile_advice import CompileAdviceHook

__all__ = ['CompileAdviceHook']
