"""Puts this package's modules into the OpenMMLab registries.

``MODELS`` and ``HOOKS`` are this package's own scope, children of MMEngine's root registries, so
``dict(type='mmhrformer.HRFormer')`` builds from any host's ``MODELS`` (MMSeg, MMPose, MMPretrain):
MMEngine resolves a scoped type through ``mmhrformer.registry`` (and ``'mmhrformer.CompileAdviceHook'``
from any host's ``custom_hooks``). The bare model name is also registered
into the hosts that lack a module of that name; MMPose keeps its own ``HRFormer``.
"""
import importlib
from typing import Sequence, Type

from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import Registry

MODELS = Registry('model', parent=MMENGINE_MODELS, scope='mmhrformer')
HOOKS = Registry('hook', parent=MMENGINE_HOOKS, scope='mmhrformer',
                 locations=['mmhrformer.engine'])

HOSTS = ('mmseg', 'mmpose', 'mmpretrain')


def host_models(host: str):
    """The host's MODELS registry, or None when the host is not installed."""
    try:
        return importlib.import_module(f'{host}.registry').MODELS
    except ModuleNotFoundError as err:
        # Only a missing host is optional; a host that is installed but broken must say so.
        if err.name is not None and err.name.split('.')[0] == host:
            return None
        raise


def register(module: Type, bare_name_hosts: Sequence[str]) -> Type:
    """Registers ``module`` in this scope and, by its bare name, in the given installed hosts."""
    MODELS.register_module(module=module)
    for host in bare_name_hosts:
        registry = host_models(host)
        if registry is not None and module.__name__ not in registry.module_dict:
            registry.register_module(module=module)
    return module
