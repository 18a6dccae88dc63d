"""Export-time patches of the hosts' code, undone on leaving: training and PyTorch inference never
see them.

As MMDeploy's function rewriters: where a host function does something only for eager runs that
stops a graph exporter, a context manager changes that function while the export runs. Each patch
names the host code it changes and why.
"""
import contextlib
from typing import Iterator


@contextlib.contextmanager
def export_patches(host: str) -> Iterator[None]:
    """Applies the patches ``host``'s models need while inside the ``with`` block.

    Args:
        host (str): ``'mmseg'``, ``'mmpose'`` or ``'mmpretrain'``.
    """
    with contextlib.ExitStack() as stack:
        if host == 'mmseg':
            stack.enter_context(mmseg_resize_without_warning())
        yield


@contextlib.contextmanager
def mmseg_resize_without_warning() -> Iterator[None]:
    """MMSeg's ``resize(..., warning=True)`` as ``warning=False``.

    With ``align_corners=True`` (the shipped OCRNet configs, as openseg trained them) MMSeg's
    ``resize`` calls ``int()`` on the input and output sizes to decide whether to warn about
    misaligned corners. Under the exporter those sizes are symbolic, and ``int()`` fixes them to
    the example input's: the graph then holds no free height or width, or the dynamic export
    fails. ``warning=False`` skips only that warning; the interpolation is the same. Every MMSeg
    module imported ``resize`` by name, so the function's own default is changed rather than the
    module attribute, which the importing modules would not see.
    """
    from mmseg.models.utils import wrappers
    resize = wrappers.resize
    defaults = resize.__defaults__
    names = resize.__code__.co_varnames[:resize.__code__.co_argcount]
    assert names[-1] == 'warning' and defaults[-1] is True, (names, defaults)
    resize.__defaults__ = defaults[:-1] + (False, )
    try:
        yield
    finally:
        resize.__defaults__ = defaults
