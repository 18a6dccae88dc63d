"""Generates the tiny synthetic data sets the quickstart trains on (committed under ``demo/data/``).

Deterministic: the same numpy seed, the same drawing calls, PNG and JPEG written by OpenCV. Run it
again only to change the data; ``--check`` regenerates into a temporary folder and compares.

* ``demo/data/tiny_seg``: 64x64 JPEG images of coloured shapes on a textured, noisy background
  and PNG label maps in a stock MMSeg layout (``img_dir/{train,val}``, ``ann_dir/{train,val}``) with
  four classes: 0 background, 1 disc (reddish), 2 square (greenish, rotated), 3 triangle (bluish).
  Colour and shape both tell the class; sizes, positions, hues and overlaps vary.
* ``demo/data/tiny_pose``: 96x96 JPEG images, each with one stick "figure" whose 17 COCO keypoints
  are dots of 17 distinct hues, and COCO-format keypoint annotations
  (``annotations/{train,val}.json``:
  person box, area, 17 keypoints all visible). Limb angles, size, position and head tilt vary.

Usage: ``python tools/make_tiny_data.py [--out demo/data] [--check]``.
"""
import argparse
import filecmp
import json
import math
import os
import os.path as osp
import sys
import tempfile

import cv2
import numpy as np

SEED = 20211025
SEG_SIZE = 64
SEG_SPLITS = {'train': 40, 'val': 12}
SEG_CLASSES = ('background', 'disc', 'square', 'triangle')
SEG_PALETTE = [[0, 0, 0], [220, 40, 60], [40, 180, 40], [40, 90, 230]]  # RGB, for pictures
SEG_HUES = {1: 0, 2: 60, 3: 115}  # OpenCV hue (0..179) of each shape class: red, green, blue

POSE_SIZE = 96
POSE_SPLITS = {'train': 48, 'val': 16}
KEYPOINT_NAMES = ('nose', 'left_eye', 'right_eye', 'left_ear', 'right_ear', 'left_shoulder',
                  'right_shoulder', 'left_elbow', 'right_elbow', 'left_wrist', 'right_wrist',
                  'left_hip', 'right_hip', 'left_knee', 'right_knee', 'left_ankle', 'right_ankle')
# COCO's skeleton, 1-based as in the official annotation files.
SKELETON = [[16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8],
            [7, 9], [8, 10], [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7]]


def texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Low-saturation background: a smooth random colour field, a gradient and pixel noise (BGR)."""
    grid = rng.uniform(60, 190, size=(4, 4, 1)) + rng.uniform(-18, 18, size=(4, 4, 3))
    field = cv2.resize(grid.astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, 2 * math.pi)
    field += (np.cos(angle) * xx / w + np.sin(angle) * yy / h)[..., None] * rng.uniform(-40, 40)
    field += rng.normal(0, 10, size=(h, w, 3))
    return field


def finish(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    img = img + rng.normal(0, 6, size=img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def hsv_colour(rng: np.random.Generator, hue: float) -> np.ndarray:
    hsv = np.array([[[hue % 180, rng.uniform(150, 255), rng.uniform(130, 255)]]], dtype=np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0].astype(np.float32)


def shape_polygon(rng: np.random.Generator, cls: int, cx: float, cy: float, r: float):
    """None for a disc (drawn as a circle), else the polygon's integer vertices."""
    if cls == 1:
        return None
    theta = rng.uniform(0, 2 * math.pi)
    n = 4 if cls == 2 else 3
    angles = [theta + 2 * math.pi * k / n for k in range(n)]
    pts = [(cx + r * math.cos(a), cy + r * math.sin(a)) for a in angles]
    return np.round(np.array(pts)).astype(np.int32)


def make_seg_sample(rng: np.random.Generator):
    h = w = SEG_SIZE
    img = texture(rng, h, w)
    label = np.zeros((h, w), np.uint8)
    for _ in range(rng.integers(2, 5)):
        cls = int(rng.integers(1, 4))
        r = rng.uniform(6, 14)
        cx, cy = rng.uniform(4, w - 4), rng.uniform(4, h - 4)
        mask = np.zeros((h, w), np.uint8)
        poly = shape_polygon(rng, cls, cx, cy, r * (1.25 if cls == 3 else 1.1))
        if poly is None:
            cv2.circle(mask, (int(round(cx)), int(round(cy))), int(round(r)), 1, -1)
        else:
            cv2.fillPoly(mask, [poly], 1)
        colour = hsv_colour(rng, SEG_HUES[cls] + rng.uniform(-8, 8))
        shade = 1 + rng.normal(0, 0.06, size=(h, w, 1))  # a little texture inside the shape too
        inside = mask.astype(bool)
        img[inside] = (colour * shade)[inside]
        label[inside] = cls
    return finish(img, rng), label


def template_pose(rng: np.random.Generator) -> np.ndarray:
    """17 (x, y) keypoints of a standing figure, unit height, x centred on 0, with random limbs."""
    k = np.zeros((17, 2))
    tilt = rng.uniform(-0.25, 0.25)
    neck = np.array([0.0, 0.2])
    head = neck + 0.11 * np.array([math.sin(tilt), -math.cos(tilt)])
    side = np.array([math.cos(tilt), math.sin(tilt)])  # the head's left-right axis
    up = np.array([math.sin(tilt), -math.cos(tilt)])
    k[0] = head  # nose
    k[1], k[2] = head + 0.035 * side + 0.03 * up, head - 0.035 * side + 0.03 * up  # eyes
    k[3], k[4] = head + 0.075 * side + 0.01 * up, head - 0.075 * side + 0.01 * up  # ears
    shoulder = rng.uniform(0.13, 0.17)
    k[5], k[6] = neck + [shoulder, 0.02], neck + [-shoulder, 0.02]
    hip_y, hip_x = rng.uniform(0.52, 0.56), rng.uniform(0.08, 0.11)
    k[11], k[12] = [hip_x, hip_y], [-hip_x, hip_y]
    for s, (sh, el, wr) in ((1, (5, 7, 9)), (-1, (6, 8, 10))):
        # angles from straight down, outwards positive: arms swing freely, elbows bend
        a1 = rng.uniform(-0.3, 1.9)
        a2 = a1 + rng.uniform(-0.4, 1.6)
        k[el] = k[sh] + 0.17 * np.array([s * math.sin(a1), math.cos(a1)])
        k[wr] = k[el] + 0.16 * np.array([s * math.sin(a2), math.cos(a2)])
    for s, (hp, kn, an) in ((1, (11, 13, 15)), (-1, (12, 14, 16))):
        a1 = rng.uniform(-0.15, 0.45)
        a2 = a1 + rng.uniform(-0.5, 0.2)
        k[kn] = k[hp] + 0.23 * np.array([s * math.sin(a1), math.cos(a1)])
        k[an] = k[kn] + 0.22 * np.array([s * math.sin(a2), math.cos(a2)])
    return k


def make_pose_sample(rng: np.random.Generator):
    h = w = POSE_SIZE
    img = texture(rng, h, w)
    pose = template_pose(rng)
    height = rng.uniform(58, 80)
    kpts = pose * height
    kpts[:, 0] *= rng.uniform(0.85, 1.1)  # a little anisotropy
    lo, hi = kpts.min(0), kpts.max(0)
    offset = np.array([rng.uniform(4 - lo[0], w - 4 - hi[0]),
                       rng.uniform(4 - lo[1], h - 4 - hi[1])])
    kpts += offset
    canvas = np.ascontiguousarray(img.astype(np.float32))
    limb = tuple(float(v) for v in rng.uniform(200, 240, size=3))
    thickness = int(rng.integers(2, 4))
    for a, b in SKELETON:
        pa, pb = np.round(kpts[a - 1] * 16).astype(int), np.round(kpts[b - 1] * 16).astype(int)
        cv2.line(canvas, tuple(pa.tolist()), tuple(pb.tolist()), limb, thickness, cv2.LINE_AA, 4)
    for i, (x, y) in enumerate(kpts):
        hue = (i * 180 / 17 + rng.uniform(-2, 2)) % 180
        hsv = np.array([[[hue, 255, 255]]], np.uint8)
        colour = tuple(float(v) for v in cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0])
        cv2.circle(canvas, (int(round(x * 16)), int(round(y * 16))), 40, colour, -1, cv2.LINE_AA, 4)
    margin = 4
    x0, y0 = np.maximum(kpts.min(0) - margin, 0)
    x1, y1 = np.minimum(kpts.max(0) + margin, [w - 1, h - 1])
    bbox = [round(float(v), 2) for v in (x0, y0, x1 - x0, y1 - y0)]
    return finish(canvas, rng), np.round(kpts, 2), bbox


def write_seg(root: str, rng: np.random.Generator) -> None:
    for split, n in SEG_SPLITS.items():
        os.makedirs(osp.join(root, 'img_dir', split), exist_ok=True)
        os.makedirs(osp.join(root, 'ann_dir', split), exist_ok=True)
        for i in range(n):
            img, label = make_seg_sample(rng)
            name = f'{split}_{i:03d}'
            cv2.imwrite(osp.join(root, 'img_dir', split, name + '.jpg'), img,
                        [cv2.IMWRITE_JPEG_QUALITY, 90])
            cv2.imwrite(osp.join(root, 'ann_dir', split, name + '.png'), label,
                        [cv2.IMWRITE_PNG_COMPRESSION, 9])


def write_pose(root: str, rng: np.random.Generator) -> None:
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    category = dict(id=1, name='person', supercategory='person', keypoints=list(KEYPOINT_NAMES),
                    skeleton=SKELETON)
    for split, n in POSE_SPLITS.items():
        os.makedirs(osp.join(root, split), exist_ok=True)
        images, annotations = [], []
        for i in range(n):
            img, kpts, bbox = make_pose_sample(rng)
            name = f'{split}_{i:03d}.jpg'
            cv2.imwrite(osp.join(root, split, name), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
            images.append(dict(id=i + 1, file_name=name, width=POSE_SIZE, height=POSE_SIZE))
            flat = []
            for x, y in kpts.tolist():
                flat += [x, y, 2]
            annotations.append(
                dict(id=i + 1, image_id=i + 1, category_id=1, bbox=bbox, iscrowd=0,
                     area=round(bbox[2] * bbox[3], 2), num_keypoints=17, keypoints=flat))
        with open(osp.join(root, 'annotations', f'{split}.json'), 'w') as f:
            json.dump(dict(info=dict(description='mmhrformer tiny synthetic pose data'),
                           images=images, annotations=annotations, categories=[category]), f)


def generate(out: str) -> None:
    rng = np.random.default_rng(SEED)
    write_seg(osp.join(out, 'tiny_seg'), rng)
    write_pose(osp.join(out, 'tiny_pose'), rng)


def same_tree(a: str, b: str) -> bool:
    cmp = filecmp.dircmp(a, b)
    if cmp.left_only or cmp.right_only or cmp.diff_files or cmp.funny_files:
        return False
    _, mismatch, errors = filecmp.cmpfiles(a, b, cmp.common_files, shallow=False)
    return not mismatch and not errors and all(
        same_tree(osp.join(a, d), osp.join(b, d)) for d in cmp.common_dirs)


def main() -> int:
    repo = osp.dirname(osp.dirname(osp.abspath(__file__)))
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default=osp.join(repo, 'demo', 'data'))
    parser.add_argument('--check', action='store_true',
                        help='regenerate into a temporary folder and compare with --out')
    args = parser.parse_args()
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            generate(tmp)
            ok = all(same_tree(osp.join(tmp, d), osp.join(args.out, d))
                     for d in ('tiny_seg', 'tiny_pose'))
        print('identical' if ok else 'DIFFERENT')
        return 0 if ok else 1
    generate(args.out)
    print(f'wrote {args.out}/tiny_seg and {args.out}/tiny_pose')
    return 0


if __name__ == '__main__':
    sys.exit(main())
