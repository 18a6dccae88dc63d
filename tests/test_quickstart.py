"""The README's first command, shortened: tools/quickstart.py trains OCRNet-HRFormer-T and TopDown
HRFormer-T on the shipped tiny data with the hosts' runners (once, for this file), and both must
score clearly better than chance on the held-out split; MMSeg's own tools/test.py reproduces the
mIoU from the checkpoint, which its inferencer loads too, and MMPose's inferencer and the demo load
the pose checkpoint; the committed data is what tools/make_tiny_data.py makes. (Two-rank training
of the same seg config: tests/test_distributed.py.)"""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SEG_CONFIG = ROOT / 'configs' / 'quickstart' / 'ocrnet_hrformer-t_tiny-seg.py'
POSE_CONFIG = ROOT / 'configs' / 'quickstart' / 'td-hm_hrformer-t_tiny-pose.py'
# Half the README run's iterations (200 each): 66.9 mIoU and 0.79 AP when this was written, against
# about 20 mIoU for all-background and about 0 AP for keypoints that ignore the image (after 10
# iterations: 5 mIoU, 0 AP).
ITERS = 100
MIN_MIOU = 50.0
MIN_AP = 0.3


def run(cmd, **kwargs):
    """A command as users run it from the clone, with torch's safe loading on."""
    env = dict(os.environ, OMP_WAIT_POLICY='PASSIVE', PYTHONUNBUFFERED='1')
    env.pop('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', None)
    return subprocess.run([str(c) for c in cmd], cwd=ROOT, env=env, capture_output=True, text=True,
                          **kwargs)


@pytest.fixture(scope='module')
def quickstart(tmp_path_factory):
    """(the finished process, its work folder, its summary.json)."""
    work = tmp_path_factory.mktemp('quickstart')
    proc = run([sys.executable, ROOT / 'tools' / 'quickstart.py', '--iters', ITERS, '--check',
                '--work-dir', work], timeout=600)
    assert (work / 'summary.json').exists(), proc.stdout[-4000:] + proc.stderr[-4000:]
    return proc, work, json.loads((work / 'summary.json').read_text())


@pytest.mark.slow
def test_quickstart_learns_both_tasks(quickstart):
    proc, work, summary = quickstart
    seg, pose = summary['seg'], summary['pose']
    report = (f"mIoU {seg['metrics']['mIoU']}, AP {pose['metrics']['coco/AP']}\n" +
              proc.stdout[-3000:])
    assert seg['metrics']['mIoU'] >= MIN_MIOU, report
    assert pose['metrics']['coco/AP'] >= MIN_AP, report
    assert proc.returncode == 0, report  # --check agrees
    assert seg['iters'] == pose['iters'] == ITERS
    # progress came through the runners' loggers, from both tasks
    for task in ('seg', 'pose'):
        assert re.search(rf'\[{task}\s*\] .*Iter\(train\) \[\s*{ITERS}/{ITERS}\]', proc.stdout)
    assert '== quickstart summary' in proc.stdout
    # checkpoints at the last iteration, pictures of image | ground truth | prediction
    for task, res in (('seg', seg), ('pose', pose)):
        assert Path(res['checkpoint']).is_file() and res['checkpoint'].endswith(f'iter_{ITERS}.pth')
        img = cv2.imread(res['picture'])
        assert img is not None and res['picture'] == str(work / f'{task}_prediction.png')
        assert img.shape[1] > 3 * 64 * 3 and img.shape[0] > 64 * 3  # three upscaled panels a row


@pytest.mark.slow
def test_seg_checkpoint_with_mmseg_test_tool_and_inferencer(quickstart):
    """MMSeg's own tools/test.py (what ``mim test mmseg`` runs: ``load_from``) on the quickstart's
    checkpoint, with torch's safe loading on (the config's custom_imports allowlists MMEngine's
    types), and MMSeg's inferencer on the same file."""
    from mmseg.apis import MMSegInferencer

    from mmhrformer.cli.host_tool import host_script
    _, work, summary = quickstart
    checkpoint = summary['seg']['checkpoint']
    proc = run([sys.executable, host_script('mmseg', 'test'), SEG_CONFIG, checkpoint,
                '--work-dir', work / 'seg_test'], timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    miou = re.search(r'Iter\(test\) .*mIoU: ([\d.]+)', out)
    assert miou, out[-4000:]
    assert float(miou.group(1)) == pytest.approx(summary['seg']['metrics']['mIoU'], abs=0.011)

    inferencer = MMSegInferencer(model=str(SEG_CONFIG), weights=checkpoint, device='cpu')
    image = np.random.default_rng(0).integers(0, 256, (70, 90, 3), dtype=np.uint8)
    assert inferencer(image)['predictions'].shape == (70, 90)
    assert inferencer.model.dataset_meta['classes'] == ('background', 'disc', 'square', 'triangle')


@pytest.mark.slow
def test_seg_checkpoint_with_test_time_augmentation(quickstart):
    """``--tta``, as README shows it: the quickstart config's scales and flips through MMSeg's
    SegTTAModel, scored by the same metric."""
    from mmhrformer.cli.host_tool import host_script
    _, work, summary = quickstart
    proc = run([sys.executable, host_script('mmseg', 'test'), SEG_CONFIG,
                summary['seg']['checkpoint'], '--tta', '--work-dir', work / 'seg_tta'],
               timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    miou = re.search(r'Iter\(test\) .*mIoU: ([\d.]+)', out)
    assert miou and float(miou.group(1)) > MIN_MIOU, out[-4000:]


@pytest.mark.slow
def test_pose_checkpoint_with_mmpose_inferencer_and_demo(quickstart, tmp_path):
    # The pose checkpoint MMPose's runner trained in the quickstart.
    from mmpose.apis import MMPoseInferencer
    checkpoint = quickstart[2]['pose']['checkpoint']
    # The config as the inferencer reads it (data_mode, dataset_type); the whole image is the
    # person box, so no detector is downloaded.
    inferencer = MMPoseInferencer(pose2d=str(POSE_CONFIG), pose2d_weights=str(checkpoint),
                                  det_model='whole_image', device='cpu')
    image = np.random.default_rng(0).integers(0, 256, (96, 80, 3), dtype=np.uint8)
    prediction = next(inferencer(image))['predictions'][0]
    assert len(prediction) == 1 and np.array(prediction[0]['keypoints']).shape == (17, 2)

    demo = run([sys.executable, ROOT / 'demo' / 'image_demo.py', ROOT / 'demo' / 'data' /
                'tiny_pose' / 'val', POSE_CONFIG, checkpoint, '--out-dir', tmp_path / 'out',
                '--bboxes', '5,5,60,90', '20,10,90,80', '--kpt-thr', '0'], timeout=300)
    # (every keypoint drawn: MMPose's OpenCV drawing breaks under numpy 2 once it draws any)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert '2 person box(es)' in demo.stdout
    pictures = sorted((tmp_path / 'out').glob('*_pose.png'))
    assert len(pictures) == len(list((ROOT / 'demo' / 'data' / 'tiny_pose' / 'val').glob('*.jpg')))


def test_shipped_data_is_what_the_generator_makes():
    proc = run([sys.executable, ROOT / 'tools' / 'make_tiny_data.py', '--check'], timeout=120)
    assert proc.returncode == 0 and 'identical' in proc.stdout, proc.stdout + proc.stderr


def test_shipped_data_layout():
    seg = ROOT / 'demo' / 'data' / 'tiny_seg'
    for split in ('train', 'val'):
        imgs = sorted((seg / 'img_dir' / split).glob('*.jpg'))
        anns = sorted((seg / 'ann_dir' / split).glob('*.png'))
        assert imgs and [p.stem for p in imgs] == [p.stem for p in anns]
        label = cv2.imread(str(anns[0]), cv2.IMREAD_UNCHANGED)
        assert label.ndim == 2 and set(label.ravel().tolist()) <= {0, 1, 2, 3}
    pose = ROOT / 'demo' / 'data' / 'tiny_pose'
    for split in ('train', 'val'):
        coco = json.loads((pose / 'annotations' / f'{split}.json').read_text())
        assert len(coco['images']) == len(coco['annotations']) > 0
        assert all(len(a['keypoints']) == 17 * 3 and a['num_keypoints'] == 17
                   for a in coco['annotations'])
        assert all((pose / split / im['file_name']).is_file() for im in coco['images'])
    size = sum(p.stat().st_size for p in (ROOT / 'demo').rglob('*') if p.is_file())
    assert size < 1024 * 1024
