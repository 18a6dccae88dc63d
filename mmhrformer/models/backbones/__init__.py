from .hrformer import ARCH_ZOO, HRFormer

__all__ = ['ARCH_ZOO', 'HRFormer']
