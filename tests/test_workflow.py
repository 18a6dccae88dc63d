"""The workflow after training, as users run it, on torch >= 2.6 with its safe loading left on
(``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` unset): a training killed mid-run and resumed by MMSeg's own
tools/train.py ends with the weights of an uninterrupted run; checkpoints trained by each host's
runner (MMSeg, MMPose, MMPretrain) load through ``load_from``, the hosts' test tools and
inferencers, and ``hrformer-demo`` (MMSeg's test tool and inferencer, MMPose's inferencer and the
demo on the quickstart's checkpoints: tests/test_quickstart.py); a file that pickles anything beyond MMEngine's own types is
still refused."""
import io
import os
import pickle
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import mmhrformer  # noqa: F401  (what custom_imports does: the allowlist)
import official  # tests/official.py
from mmhrformer.cli.host_tool import host_script

ROOT = Path(__file__).resolve().parents[1]
SEG_CONFIG = ROOT / 'configs' / 'quickstart' / 'ocrnet_hrformer-t_tiny-seg.py'
ITERS = 8  # checkpoints every 2

# The quickstart seg config, made deterministic: no random augmentation (the 64x64 images batch as
# they are), a seeded sampler, a checkpoint every 2 iterations, validation only at the end.
RESUMABLE = f'''
_base_ = [r'{SEG_CONFIG}']
train_dataloader = dict(batch_size=2, dataset=dict(pipeline=[
    dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'), dict(type='PackSegInputs')]))
train_cfg = dict(max_iters={ITERS}, val_interval={ITERS})
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end={ITERS})]
default_hooks = dict(checkpoint=dict(interval=2, max_keep_ckpts={ITERS}),
                     logger=dict(interval=1))
randomness = dict(seed=0)
'''


def environment():
    env = dict(os.environ, PYTHONUNBUFFERED='1', OMP_NUM_THREADS='1')
    env.pop('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', None)
    return env


def run(cmd, **kwargs):
    return subprocess.run([str(c) for c in cmd], cwd=ROOT, env=environment(), capture_output=True,
                          text=True, **kwargs)


def weights(path):
    return torch.load(path, map_location='cpu', weights_only=True)['state_dict']


@pytest.fixture(scope='module')
def resumable_config(tmp_path_factory):
    path = tmp_path_factory.mktemp('cfg') / 'ocrnet_tiny_resumable.py'
    path.write_text(RESUMABLE)
    return path


@pytest.fixture(scope='module')
def uninterrupted(resumable_config, tmp_path_factory):
    work = tmp_path_factory.mktemp('uninterrupted')
    proc = run([sys.executable, host_script('mmseg', 'train'), resumable_config, '--work-dir', work],
               timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return work


@pytest.mark.slow
def test_killed_training_resumes_to_the_same_weights(resumable_config, uninterrupted, tmp_path):
    train = [sys.executable, host_script('mmseg', 'train'), resumable_config, '--work-dir', tmp_path]
    proc = subprocess.Popen([str(c) for c in train], cwd=ROOT, env=environment(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Kill it hard (no clean exit) once a checkpoint is complete: MMEngine writes last_checkpoint
    # after the checkpoint file.
    deadline = time.time() + 300
    while not (tmp_path / 'last_checkpoint').exists():
        assert proc.poll() is None and time.time() < deadline, 'no checkpoint before the end'
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    saved = Path((tmp_path / 'last_checkpoint').read_text().strip())
    saved_iter = int(re.search(r'iter_(\d+)\.pth', saved.name).group(1))
    assert saved_iter < ITERS and not (tmp_path / f'iter_{ITERS}.pth').exists()

    resumed = run(train + ['--resume'], timeout=600)
    log = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, log[-4000:]
    assert f'resumed epoch: 0, iter: {saved_iter}' in log, log[-4000:]
    assert f'Advance dataloader {saved_iter} steps' in log
    assert re.search(rf'Iter\(train\) \[\s*{saved_iter + 1}/{ITERS}\]', log), log[-4000:]
    assert not re.search(rf'Iter\(train\) \[\s*{saved_iter}/{ITERS}\]', log)  # not redone

    # The saved optimizer (AdamW moments), scheduler and data position carried over exactly.
    expected, got = weights(uninterrupted / f'iter_{ITERS}.pth'), weights(tmp_path / f'iter_{ITERS}.pth')
    assert expected.keys() == got.keys()
    for key, value in expected.items():
        torch.testing.assert_close(got[key], value, atol=1e-6, rtol=1e-5, msg=key)
    middle = weights(uninterrupted / f'iter_{saved_iter}.pth')
    assert any(not torch.equal(middle[k], v) for k, v in expected.items())  # it did train on


@pytest.mark.slow
def test_demo_on_seg_and_a_converted_classifier(uninterrupted, tmp_path):
    import cv2
    seg = run([sys.executable, ROOT / 'demo' / 'image_demo.py', ROOT / 'demo' / 'data' /
               'tiny_seg' / 'img_dir' / 'val' / 'val_000.jpg', SEG_CONFIG,
               uninterrupted / f'iter_{ITERS}.pth', '--out-dir', tmp_path], timeout=300)
    assert seg.returncode == 0, seg.stdout[-3000:] + seg.stderr[-3000:]
    assert re.search(r'val_000\.jpg: (background|disc|square|triangle) \d+%', seg.stdout)
    picture = cv2.imread(str(tmp_path / 'val_000_seg.png'))
    assert picture is not None and picture.shape == (64, 64, 3)

    # An official ImageNet checkpoint converted to a whole classifier: ImageNet's class names.
    src, dst = tmp_path / 'hrt_tiny.pth', tmp_path / 'hrformer-t_in1k.pth'
    torch.save({'model': official.random_state_dict('tiny')}, src)
    assert run([sys.executable, ROOT / 'tools' / 'model_converters' / 'hrformer2mmseg.py', src,
                dst, '--full-classifier'], timeout=300).returncode == 0
    cls = run([sys.executable, ROOT / 'demo' / 'image_demo.py', ROOT / 'demo' / 'data' /
               'tiny_pose' / 'val' / 'val_000.jpg', ROOT / 'configs' / 'hrformer_cls' /
               'hrformer-t_8xb128_in1k.py', dst, '--out-dir', tmp_path, '--topk', '3'],
              timeout=300)
    assert cls.returncode == 0, cls.stdout[-3000:] + cls.stderr[-3000:]
    # (MMPretrain's progress bar may end on the same line, without a newline)
    line = re.search(r'val_000\.jpg: (.*)', cls.stdout)
    assert line and line.group(1).count(',') >= 2, cls.stdout[-3000:]
    assert cv2.imread(str(tmp_path / 'val_000_cls.png')) is not None


# ---- what the allowlist lets through, and what it still refuses ----

class Foreign:
    """A class no allowlist names."""


def test_mmengine_types_load_and_foreign_ones_are_refused(tmp_path):
    from mmengine.logging import HistoryBuffer, MessageHub
    hub = MessageHub.get_instance('safe-globals-test')
    hub.update_scalar('train/loss', np.float64(0.5))
    hub.update_scalar('train/loss', 0.25)
    good = tmp_path / 'good.pth'
    torch.save({'message_hub': hub.state_dict(), 'meta': {'sigmas': np.ones(17, np.float32)},
                'state_dict': {'w': torch.ones(2)}}, good)
    loaded = torch.load(good, weights_only=True)
    assert isinstance(loaded['message_hub']['log_scalars']['train/loss'], HistoryBuffer)
    assert loaded['message_hub']['log_scalars']['train/loss'].mean() == pytest.approx(0.375)

    bad = tmp_path / 'bad.pth'
    torch.save({'state_dict': {'w': torch.ones(2)}, 'meta': Foreign()}, bad)
    with pytest.raises(pickle.UnpicklingError, match='Foreign'):
        torch.load(bad, weights_only=True)


def test_getattr_is_only_for_history_buffer_statistics():
    from mmengine.logging import HistoryBuffer

    class Reach:  # pickles as getattr(owner, name), as HistoryBuffer's methods do
        def __init__(self, owner, name):
            self.owner, self.name = owner, name

        def __reduce__(self):
            return getattr, (self.owner, self.name)

    def load(obj):
        buffer = io.BytesIO()
        torch.save({'x': obj}, buffer)
        buffer.seek(0)
        return torch.load(buffer, weights_only=True)['x']

    assert load(Reach(HistoryBuffer, 'mean')) == HistoryBuffer.mean
    for owner, name in ((HistoryBuffer, '__init__'), (np.ndarray, 'tofile'),
                        (HistoryBuffer, '__class__')):
        with pytest.raises(pickle.UnpicklingError, match='refused getattr'):
            load(Reach(owner, name))


# A classification run small enough for the CPU: HRFormer-T + the official neck on two "classes"
# of shipped images (MMPretrain's CustomDataset reads class folders).
TINY_CLS = '''
_base_ = ['mmpretrain::_base_/default_runtime.py']
custom_imports = dict(imports=['mmhrformer'], allow_failed_imports=False)
model = dict(type='ImageClassifier', backbone=dict(type='mmhrformer.HRFormer', arch='tiny'),
             neck=dict(type='mmhrformer.HRFormerClsNeck', in_channels=(18, 36, 72, 144)),
             head=dict(type='LinearClsHead', num_classes=2, in_channels=2048,
                       loss=dict(type='CrossEntropyLoss'), topk=(1, )))
data_preprocessor = dict(num_classes=2, mean=[123.675, 116.28, 103.53],
                         std=[58.395, 57.12, 57.375], to_rgb=True)
pipeline = [dict(type='LoadImageFromFile'), dict(type='Resize', scale=64), dict(type='PackInputs')]
data = dict(type='CustomDataset', data_root=r'{root}', pipeline=pipeline)
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        sampler=dict(type='DefaultSampler', shuffle=True), dataset=data)
test_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                       sampler=dict(type='DefaultSampler', shuffle=False), dataset=data)
test_evaluator = dict(type='Accuracy', topk=(1, ))
test_cfg = dict()
train_cfg = dict(by_epoch=False, max_iters=2)
optim_wrapper = dict(optimizer=dict(type='AdamW', lr=1e-3))
param_scheduler = []
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False))
'''


@pytest.mark.slow
def test_classifier_checkpoint_with_mmpretrain_test_tool_and_inferencer(tmp_path):
    import shutil

    from mmpretrain.apis import ImageClassificationInferencer
    images = sorted((ROOT / 'demo' / 'data' / 'tiny_seg' / 'img_dir' / 'train').glob('*.jpg'))
    for label, chunk in (('a', images[:4]), ('b', images[4:8])):
        (tmp_path / 'data' / label).mkdir(parents=True)
        for image in chunk:
            shutil.copy(image, tmp_path / 'data' / label)
    config = tmp_path / 'hrformer-t_tiny-cls.py'
    config.write_text(TINY_CLS.format(root=tmp_path / 'data'))
    train = run([sys.executable, host_script('mmpretrain', 'train'), config, '--work-dir',
                 tmp_path / 'run'], timeout=600)
    assert train.returncode == 0, train.stdout[-3000:] + train.stderr[-3000:]
    checkpoint = tmp_path / 'run' / 'iter_2.pth'
    test = run([sys.executable, host_script('mmpretrain', 'test'), config, checkpoint,
                '--work-dir', tmp_path / 'test'], timeout=300)
    assert test.returncode == 0, test.stdout[-3000:] + test.stderr[-3000:]
    assert re.search(r'accuracy/top1: [\d.]+', test.stdout + test.stderr)
    # MMPretrain's inferencer builds its pipeline in the current default scope, which another
    # host's code in this process may have set: scope it (a fresh process needs nothing).
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        inferencer = ImageClassificationInferencer(model=str(config),
                                                   pretrained=str(checkpoint), device='cpu')
        result = inferencer(str(images[0]))[0]
    assert len(result['pred_scores']) == 2 and result['pred_label'] in (0, 1)
