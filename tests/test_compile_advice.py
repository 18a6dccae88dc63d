"""What MMEngine's ``compile`` becomes with a shipped config: the plan per device, one line at the
start of training, eager training for ``compile=True`` on a CPU, one-line refusals of bad values."""
from pathlib import Path

import pytest
from mmengine.config import Config
from mmengine.runner import Runner

from mmhrformer.engine import plan_compile
from mmhrformer.engine.compiled_training import CUDA_OPTIONS

pytestmark = pytest.mark.usefixtures('one_thread')

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted(p for p in (ROOT / 'configs').rglob('*.py') if '_base_' not in p.parts)


@pytest.mark.parametrize('path', CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_config_has_the_hook(path):
    hooks = [h['type'] for h in Config.fromfile(str(path)).get('custom_hooks', [])]
    assert 'mmhrformer.CompileAdviceHook' in hooks
    if 'hrformer_pose' in path.parts or 'pose' in path.name:
        assert 'SyncBuffersHook' in hooks  # MMPose's own stays


def test_plan_per_device():
    assert plan_compile(None, 'cuda') == plan_compile(False, 'cpu')
    assert plan_compile(None, 'cuda').options is None and not plan_compile(None, 'cuda').message

    cpu = plan_compile(True, 'cpu')
    assert cpu.options is None and not cpu.uses_cudagraphs
    assert 'training eager on the CPU' in cpu.message and '486 s' in cpu.message

    cuda = plan_compile(True, 'cuda')
    assert cuda.options == CUDA_OPTIONS == dict(mode='reduce-overhead', dynamic=False)
    assert cuda.uses_cudagraphs and 'Not measured on a GPU' in cuda.message

    # a dict is honoured as given, on any device; CUDA graphs only where inductor records them
    assert plan_compile(dict(backend='aot_eager'), 'cpu').options == dict(backend='aot_eager')
    assert '486 s' in plan_compile(dict(), 'cpu').message
    assert plan_compile(dict(mode='max-autotune'), 'cuda').uses_cudagraphs
    assert not plan_compile(dict(mode='max-autotune-no-cudagraphs'), 'cuda').uses_cudagraphs
    assert not plan_compile(dict(mode='reduce-overhead', backend='aot_eager'),
                            'cuda').uses_cudagraphs
    assert not plan_compile(dict(mode='reduce-overhead', options={'triton.cudagraphs': False}),
                            'cuda').uses_cudagraphs
    assert plan_compile(dict(options={'triton.cudagraphs': True}), 'cuda').uses_cudagraphs


@pytest.mark.parametrize('value, says', [
    ('reduce-overhead', "expected True, False or a dict of torch.compile options, got "
     "'reduce-overhead'"),
    (dict(mode='reduce-overhead', fulgraph=True), "torch.compile takes no option 'fulgraph'"),
])
def test_bad_compile_values_are_refused_in_one_line(value, says):
    with pytest.raises(ValueError, match=says) as err:
        plan_compile(value, 'cpu')
    assert '\n' not in str(err.value)


def test_compile_true_trains_eager_on_the_cpu_and_says_so_once(tmp_path):
    # (silence with compile unset: tests/test_compiled_training.py's eager runs)
    cfg = Config.fromfile(str(ROOT / 'configs/quickstart/ocrnet_hrformer-t_tiny-seg.py'))
    cfg.model.backbone.arch = dict(num_modules=(1, 1, 1), channels=(8, 8, 8, 8),
                                   num_heads=(1, 1, 1, 1))
    for head in cfg.model.decode_head:
        head.in_channels = [8] * 4
    cfg.train_cfg.update(max_iters=1, val_interval=2)
    cfg.work_dir = str(tmp_path)
    cfg.compile = True
    runner = Runner.from_cfg(cfg)
    runner.train()
    log = next(Path(runner.log_dir).glob('*.log')).read_text()
    assert log.count('compile=True: training eager on the CPU') == 1
    assert 'Model has been "compiled"' not in log  # MMEngine did not compile train_step either
    assert 'train_step' not in vars(runner.model)
    assert not hasattr(runner.model.backbone.forward, 'compiled_for_training')
    assert runner.cfg.compile is True  # the config has it back after the run
