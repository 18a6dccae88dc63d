"""The README's first command, shortened: tools/quickstart.py trains OCRNet-HRFormer-T and TopDown
HRFormer-T on the shipped tiny data with the hosts' runners (tests/shared.py, once per session), and
both must score clearly better than chance on the held-out split; MMSeg's own tools/test.py
reproduces the mIoU from the checkpoint, which its inferencer loads too; the committed data is what
tools/make_tiny_data.py makes. (Two-rank training of the same seg config:
tests/test_distributed.py.)"""
import json
import re
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from shared import QUICKSTART_ITERS as ITERS  # tests/shared.py
from shared import run

ROOT = Path(__file__).resolve().parents[1]
SEG_CONFIG = ROOT / 'configs' / 'quickstart' / 'ocrnet_hrformer-t_tiny-seg.py'
MIN_MIOU = 50.0
MIN_AP = 0.3


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
