"""The README's first command: train and evaluate HRFormer-T in MMSeg and MMPose, on the CPU.

* Segmentation: OCRNet + HRFormer-T (``configs/quickstart/ocrnet_hrformer-t_tiny-seg.py``) trained
  on ``demo/data/tiny_seg`` by MMEngine's ``Runner``; mIoU on the held-out split by MMSeg's
  ``IoUMetric``.
* Pose: TopDown heatmap + HRFormer-T (``configs/quickstart/td-hm_hrformer-t_tiny-pose.py``) trained
  on ``demo/data/tiny_pose``; AP on the held-out split by MMPose's ``CocoMetric``.

The two run side by side, one process and one thread each (their log lines are prefixed ``[seg]``
and ``[pose]``): at these sizes the model's ops are small, so two single-threaded tasks keep two
cores busy without OpenMP's per-op synchronisation, which is very slow when another program is
using the cores too. Each writes a checkpoint, its log and a
picture (image | ground truth | prediction) under ``work_dirs/quickstart/``; the run ends with a
summary, also saved as ``work_dirs/quickstart/summary.json``. The same configs train and test with
the hosts' own tools::

    mim train mmseg configs/quickstart/ocrnet_hrformer-t_tiny-seg.py
    mim test mmseg configs/quickstart/ocrnet_hrformer-t_tiny-seg.py \\
        --checkpoint work_dirs/quickstart/ocrnet_hrformer-t_tiny-seg/iter_200.pth

Usage: ``python tools/quickstart.py [--iters N | --seg-iters N --pose-iters N] [--skip-seg]
[--skip-pose] [--sequential] [--threads N] [--work-dir DIR] [--check]``.
"""
import os

# Before torch loads OpenMP: idle OpenMP threads sleep instead of spinning. When a small machine is
# also busy with something else, spinning threads wait at every op for a descheduled peer and a
# training step gets tens of times slower.
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import os.path as osp  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = {
    'seg': osp.join(REPO, 'configs', 'quickstart', 'ocrnet_hrformer-t_tiny-seg.py'),
    'pose': osp.join(REPO, 'configs', 'quickstart', 'td-hm_hrformer-t_tiny-pose.py'),
}
METRICS = {'seg': ('mIoU', 'aAcc', 'mAcc'), 'pose': ('coco/AP', 'coco/AP .5', 'coco/AR')}
# Clearly better than chance: predicting background everywhere scores an mIoU of about 20 (percent,
# as MMSeg reports it) on tiny_seg; keypoints that ignore the image score an AP near 0.
MIN_SCORE = {'seg': ('mIoU', 50.0), 'pose': ('coco/AP', 0.3)}
PICTURE_ROWS = 4
SCALE = 4  # the pictures are upscaled, the images are tiny


def parse_args(argv=None):
    from mmhrformer.cli.args import ArgumentParser  # errors on one line, exit status 2
    parser = ArgumentParser(
        description='Train and evaluate HRFormer-T on the shipped tiny data sets (segmentation and '
        'pose) on the CPU, with the hosts\' runners.')
    parser.add_argument('--iters', type=int, help='training iterations of both tasks')
    parser.add_argument('--seg-iters', type=int, help='segmentation iterations (config: 200)')
    parser.add_argument('--pose-iters', type=int, help='pose iterations (config: 200)')
    parser.add_argument('--skip-seg', action='store_true', help='skip the segmentation quickstart')
    parser.add_argument('--skip-pose', action='store_true', help='skip the pose quickstart')
    parser.add_argument('--sequential', action='store_true',
                        help='one task after the other in this process instead of side by side')
    parser.add_argument('--threads', type=int,
                        help='torch threads per task (default: the free cores shared between the '
                        'tasks running at once, at least 1)')
    parser.add_argument('--work-dir', default=osp.join(REPO, 'work_dirs', 'quickstart'),
                        help='where checkpoints, logs, pictures and summary.json go')
    parser.add_argument('--check', action='store_true',
                        help='exit 1 unless mIoU >= 50 and AP >= 0.3 (clearly better than chance)')
    parser.add_argument('--task', choices=sorted(CONFIGS), help=argparse.SUPPRESS)  # child mode
    args = parser.parse_args(argv)
    for name in ('iters', 'seg_iters', 'pose_iters', 'threads'):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f'--{name.replace("_", "-")} must be at least 1')
    if args.skip_seg and args.skip_pose:
        parser.error('nothing to do with both --skip-seg and --skip-pose')
    return args


def auto_threads(concurrent: int) -> int:
    """Cores not already busy, shared between the tasks that run at once."""
    cores = os.cpu_count() or 1
    try:
        busy = int(os.getloadavg()[0] + 0.5)
    except OSError:
        busy = 0
    return max(1, min(cores, cores - busy) // concurrent)


def set_iters(cfg, iters: int) -> None:
    """Shortens or lengthens the schedule: loop, validation, checkpoint and LR milestones scale."""
    old = cfg.train_cfg.max_iters
    cfg.train_cfg.max_iters = iters
    cfg.train_cfg.val_interval = iters
    cfg.default_hooks.checkpoint.interval = iters
    for sched in cfg.param_scheduler:
        for key in ('begin', 'end'):
            if key in sched:
                sched[key] = min(iters, max(0, round(sched[key] * iters / old)))
        if sched.get('end', 1) <= sched.get('begin', 0):
            sched['end'] = sched.get('begin', 0) + 1


def build_runner(cfg):
    """``Runner.from_cfg``, with the environment and config dumps kept out of the console.

    The config is still written to the work_dir; progress and results are logged as usual.
    """
    from mmengine.runner import Runner
    cfg.log_level = 'WARNING'
    runner = Runner.from_cfg(cfg)
    runner.logger.setLevel(logging.INFO)
    for handler in runner.logger.handlers:
        handler.setLevel(logging.INFO)
    return runner


def val_outputs(runner, rows: int):
    """The trained model's predictions on the first ``rows`` validation samples."""
    import torch
    model = runner.model
    model.eval()
    outputs = []
    with torch.no_grad():
        for batch in runner.val_dataloader:
            outputs += model.val_step(batch)
            if len(outputs) >= rows:
                break
    return outputs[:rows]


def label(panel, text: str):
    import cv2
    cv2.putText(panel, text, (3, panel.shape[0] - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                (255, 255, 255), 1, cv2.LINE_AA)
    return panel


def save_grid(rows, titles, path: str) -> None:
    """Rows of same-size BGR panels under a title strip, 2-pixel gaps, as a PNG."""
    import cv2
    import numpy as np
    h, w = rows[0][0].shape[:2]
    gap = 2
    width = len(titles) * w + (len(titles) - 1) * gap
    header = np.zeros((18, width, 3), np.uint8)
    for i, title in enumerate(titles):
        cv2.putText(header, title, (i * (w + gap) + 4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (255, 255, 255), 1, cv2.LINE_AA)
    lines = [header]
    for panels in rows:
        line = np.zeros((h, width, 3), np.uint8)
        for i, panel in enumerate(panels):
            line[:, i * (w + gap):i * (w + gap) + w] = panel
        lines += [np.zeros((gap, width, 3), np.uint8), line]
    os.makedirs(osp.dirname(path), exist_ok=True)
    cv2.imwrite(path, np.concatenate(lines))


def seg_picture(runner, path: str) -> None:
    import cv2
    import numpy as np
    palette = np.array(runner.val_dataloader.dataset.metainfo['palette'], np.uint8)[:, ::-1]  # BGR
    rows = []
    for sample in val_outputs(runner, PICTURE_ROWS):
        img = cv2.imread(sample.img_path)
        gt = sample.gt_sem_seg.data[0].cpu().numpy()
        pred = sample.pred_sem_seg.data[0].cpu().numpy()
        panels = [img, palette[np.where(gt == 255, 0, gt)], palette[pred]]
        panels = [cv2.resize(p, None, fx=SCALE, fy=SCALE, interpolation=cv2.INTER_NEAREST)
                  for p in panels]
        acc = float((gt == pred).mean())
        rows.append(panels[:2] + [label(panels[2], f'pixel acc {acc:.2f}')])
    save_grid(rows, ['image', 'ground truth', 'prediction'], path)


def draw_pose(img, keypoints, skeleton, colours):
    import cv2
    out = (img * 0.45).astype(img.dtype)  # dimmed, so that the drawn keypoints stand out
    pts = [(int(round(x * SCALE)), int(round(y * SCALE))) for x, y in keypoints]
    for a, b in skeleton:
        cv2.line(out, pts[a], pts[b], (255, 255, 255), 1, cv2.LINE_AA)
    for p, c in zip(pts, colours):
        cv2.circle(out, p, 4, c, -1, cv2.LINE_AA)
        cv2.circle(out, p, 4, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def pose_picture(runner, path: str) -> None:
    import cv2
    import numpy as np
    meta = runner.val_dataloader.dataset.metainfo
    colours = [tuple(int(v) for v in c[::-1]) for c in np.asarray(meta['keypoint_colors'])]
    rows = []
    for sample in val_outputs(runner, PICTURE_ROWS):
        img = cv2.imread(sample.img_path)
        big = cv2.resize(img, None, fx=SCALE, fy=SCALE, interpolation=cv2.INTER_NEAREST)
        gt = np.asarray(sample.gt_instances.keypoints[0])
        pred = np.asarray(sample.pred_instances.keypoints[0])
        err = float(np.linalg.norm(gt - pred, axis=-1).mean())  # image pixels
        rows.append([big, draw_pose(big, gt, meta['skeleton_links'], colours),
                     label(draw_pose(big, pred, meta['skeleton_links'], colours),
                           f'mean error {err:.1f} px')])
    save_grid(rows, ['image', 'ground truth', 'prediction'], path)


PICTURES = {'seg': seg_picture, 'pose': pose_picture}


def run_task(task: str, iters, work_dir: str) -> dict:
    """Trains and validates one task with the host's runner; draws predictions; returns results."""
    from mmengine.config import Config
    import mmhrformer  # noqa: F401  (registers the backbone; the configs import it as well)
    config = CONFIGS[task]
    cfg = Config.fromfile(config)
    cfg.work_dir = osp.join(work_dir, osp.splitext(osp.basename(config))[0])
    if iters is not None:
        set_iters(cfg, iters)
    iters = cfg.train_cfg.max_iters
    print(f'{osp.relpath(config, REPO)}: {iters} iterations of batch '
          f'{cfg.train_dataloader.batch_size}', flush=True)
    start = time.time()
    runner = build_runner(cfg)
    runner.train()
    seconds = time.time() - start
    metrics = {key: float(runner.message_hub.get_scalar(f'val/{key}').current())
               for key in METRICS[task]}
    picture = osp.join(work_dir, f'{task}_prediction.png')
    PICTURES[task](runner, picture)
    print(f'done: ' + ', '.join(f'{k} {v:.4g}' for k, v in metrics.items()) +
          f'; {seconds:.0f} s; picture {picture}', flush=True)
    return dict(metrics=metrics, iters=iters, seconds=round(seconds, 1),
                config=osp.relpath(config, REPO), work_dir=cfg.work_dir,
                checkpoint=osp.join(cfg.work_dir, f'iter_{iters}.pth'), picture=picture)


def task_iters(args, task: str):
    return getattr(args, f'{task}_iters') or args.iters


def child(args) -> int:
    """One task in this process (what the side-by-side mode starts); results go to a JSON file."""
    import torch
    torch.set_num_threads(args.threads or auto_threads(1))
    warnings.filterwarnings('ignore')
    result = run_task(args.task, task_iters(args, args.task), args.work_dir)
    with open(osp.join(args.work_dir, f'{args.task}_result.json'), 'w') as f:
        json.dump(result, f, indent=2)
    return 0


def run_side_by_side(args, tasks, threads: int) -> dict:
    """Starts one child process per task; their output is printed as it comes, line by line."""
    procs, pumps = {}, []
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    for task in tasks:
        result = osp.join(args.work_dir, f'{task}_result.json')
        if osp.exists(result):
            os.remove(result)
        cmd = [sys.executable, osp.abspath(__file__), '--task', task, '--work-dir', args.work_dir,
               '--threads', str(threads)]
        if task_iters(args, task) is not None:
            cmd += [f'--{task}-iters', str(task_iters(args, task))]
        procs[task] = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                       env=env, text=True, bufsize=1)
    width = max(len(t) for t in tasks)

    def pump(task, stream):
        for line in stream:
            sys.stdout.write(f'[{task:<{width}}] {line}')
            sys.stdout.flush()

    for task, proc in procs.items():
        pumps.append(threading.Thread(target=pump, args=(task, proc.stdout), daemon=True))
        pumps[-1].start()
    failed = [task for task, proc in procs.items() if proc.wait() != 0]
    for t in pumps:
        t.join()
    if failed:
        raise SystemExit(f'quickstart: {", ".join(failed)} failed '
                         f'(see the [{failed[0]}] lines above)')
    results = {}
    for task in tasks:
        with open(osp.join(args.work_dir, f'{task}_result.json')) as f:
            results[task] = json.load(f)
    return results


def print_summary(summary: dict) -> bool:
    ok = True
    print('\n== quickstart summary (held-out val splits)')
    names = {'seg': 'segmentation', 'pose': 'pose'}
    chance = {'seg': 'chance ~20', 'pose': 'chance ~0'}
    for task in ('seg', 'pose'):
        if task not in summary:
            continue
        res = summary[task]
        key, minimum = MIN_SCORE[task]
        score = res['metrics'][key]
        good = score >= minimum
        ok &= good
        print(f'   {names[task]:<13} {key} {score:.4g} ({chance[task]}, need {minimum}: '
              f'{"ok" if good else "LOW"}); {res["iters"]} iters in {res["seconds"]:.0f} s')
        print(f'   {"":<13} picture    {osp.relpath(res["picture"])}')
        print(f'   {"":<13} checkpoint {osp.relpath(res["checkpoint"])}')
    print(f'   wall time     {summary["wall_seconds"]:.0f} s ({summary["mode"]})')
    host = {'seg': 'mmseg', 'pose': 'mmpose'}
    for task in ('seg', 'pose'):
        if task in summary:
            res = summary[task]
            print(f'   test again:   mim test {host[task]} {res["config"]} '
                  f'--checkpoint {osp.relpath(res["checkpoint"])}')
    return ok


def main(argv=None) -> int:
    args = parse_args(argv)
    args.work_dir = osp.abspath(args.work_dir)
    os.makedirs(args.work_dir, exist_ok=True)
    if args.task:
        return child(args)
    start = time.time()
    tasks = [t for t in ('seg', 'pose') if not getattr(args, f'skip_{t}')]
    side_by_side = len(tasks) > 1 and not args.sequential
    threads = args.threads or auto_threads(len(tasks) if side_by_side else 1)
    mode = (f'side by side, {threads} thread(s) each' if side_by_side else
            f'one after the other, {threads} thread(s)')
    print(f'== quickstart: HRFormer-T, {" and ".join(tasks)}, on the CPU ({mode}); '
          f'work dir {osp.relpath(args.work_dir)}', flush=True)
    if side_by_side:
        summary = run_side_by_side(args, tasks, threads)
    else:
        import torch
        torch.set_num_threads(threads)
        warnings.filterwarnings('ignore')
        summary = {}
        for task in tasks:
            print(f'== {task}', flush=True)
            summary[task] = run_task(task, task_iters(args, task), args.work_dir)
    summary['wall_seconds'] = round(time.time() - start, 1)
    summary['mode'] = mode
    with open(osp.join(args.work_dir, 'summary.json'), 'w') as f:
        json.dump(summary, f, indent=2)
    ok = print_summary(summary)
    return 0 if ok or not args.check else 1


if __name__ == '__main__':
    sys.exit(main())
