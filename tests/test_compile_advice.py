"""Turning on MMEngine's ``compile`` with a shipped config logs what it costs; otherwise nothing."""
import glob
from pathlib import Path

import pytest
from mmengine.config import Config
from mmengine.runner import Runner

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted(p for p in (ROOT / 'configs').rglob('*.py') if '_base_' not in p.parts)


@pytest.mark.parametrize('path', CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_config_has_the_hook(path):
    hooks = [h['type'] for h in Config.fromfile(str(path)).get('custom_hooks', [])]
    assert 'mmhrformer.CompileAdviceHook' in hooks
    if 'hrformer_pose' in path.parts or 'pose' in path.name:
        assert 'SyncBuffersHook' in hooks  # MMPose's own stays


@pytest.mark.parametrize('compile_cfg', [True, False])
def test_warning_through_mmsegs_runner(compile_cfg, tmp_path):
    from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(str(ROOT / 'configs/quickstart/ocrnet_hrformer-t_tiny-seg.py'))
    cfg.work_dir = str(tmp_path)
    cfg.compile = compile_cfg
    runner = Runner.from_cfg(cfg)
    runner.call_hook('before_run')  # what train(), val() and test() call before compiling
    log = ''.join(Path(f).read_text() for f in glob.glob(f'{tmp_path}/*/*.log'))
    told = 'torch.compile is on and the model runs on the CPU' in log
    assert told == compile_cfg
    if compile_cfg:
        assert 'compiling the training step took' in log and 'compile=False' in log
