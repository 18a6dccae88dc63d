"""Stochastic depth."""
import torch
from torch import nn


class DropPath(nn.Module):
    """Zeroes a sample's residual branch with probability ``drop_prob`` (rescaling the rest)."""

    def __init__(self, drop_prob: float):
        super().__init__()
        self.drop_prob = drop_prob

    def _sample_scale(self, x: torch.Tensor) -> torch.Tensor:
        """Per sample 0 or ``1 / keep``, shape (B, 1, ..., 1)."""
        keep = 1. - self.drop_prob
        return x.new_empty((x.shape[0], ) + (1, ) * (x.dim() - 1)).bernoulli_(keep).div_(keep)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.drop_prob == 0.:
            return x
        return x * self._sample_scale(x)

    def add_to(self, shortcut: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``shortcut + self(x)``: the residual add and the drop in one op (``addcmul``) where
        separate ops would scale, divide and add over the whole tensor."""
        if not self.training or self.drop_prob == 0.:
            return shortcut + x
        return torch.addcmul(shortcut, x, self._sample_scale(x))

    def extra_repr(self) -> str:
        return f'drop_prob={self.drop_prob}'
