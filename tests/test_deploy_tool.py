"""``hrformer-export`` (tools/deployment/pytorch2onnx.py) and ``hrformer-demo`` on its files,
through their ``main``: a shipped OCRNet config as it is (``align_corners=True``) exported with
free batch, height and width, a shipped TopDown config with its flip test, a classifier; each file
against the host's own ``predict`` in PyTorch, within TensorRT 10's operator list, drawn by the demo
exactly as the checkpoint is; every bad input one line, exit status 2, no file.

The models are the shipped configs with a small HRFormer (one module per stage, 8-64 channels:
every code path, a fraction of the time), random weights and BN statistics, saved as training
saves them. Supersedes the fixed-size OCRNet export test that tests/test_deploy.py held (a
hand-built segmentor with ``align_corners=False``, exported without the tool).
"""
import contextlib
import io
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from mmengine.registry import DefaultScope

from builders import randomize_bn  # tests/builders.py
from mmhrformer.checkpoint import build_in_host
from mmhrformer.cli import demo, export
from mmhrformer.deploy import metadata
from mmhrformer.deploy.host_patches import export_patches
from mmhrformer.deploy.onnx_runtime import OnnxModel
from mmhrformer.deploy.op_support import TENSORRT10_OPS, op_types, tensorrt10_problems

pytestmark = pytest.mark.usefixtures('one_thread')  # tests/conftest.py

ROOT = Path(__file__).resolve().parents[1]
SEG_IMAGE = ROOT / 'demo' / 'data' / 'tiny_seg' / 'img_dir' / 'val' / 'val_000.jpg'
POSE_IMAGE = ROOT / 'demo' / 'data' / 'tiny_pose' / 'val' / 'val_000.jpg'
MINI = ('dict(_delete_=True, num_modules=(1, 1, 1), channels=(8, 16, 32, 64), '
        'num_heads=(1, 2, 2, 4))')

# The shipped configs as they are, with the small backbone; seg tests at a reduced scale (the
# shipped 2048x1024 resize would only cost time).
CONFIGS = {
    'seg': f'''
_base_ = [r'{ROOT}/configs/hrformer/ocrnet_hrformer-s_4xb2-80k_cityscapes-512x1024.py']
model = dict(
    backbone=dict(arch={MINI}, init_cfg=None),
    decode_head=[dict(head, in_channels=[8, 16, 32, 64], channels=16)
                 for head in _base_.model.decode_head])
model['decode_head'][1]['ocr_channels'] = 8
test_dataloader = dict(dataset=dict(pipeline=[
    dict(type='LoadImageFromFile'), dict(type='Resize', scale=(150, 90), keep_ratio=True),
    dict(type='LoadAnnotations'), dict(type='PackSegInputs')]))
''',
    'pose': f'''
_base_ = [r'{ROOT}/configs/hrformer_pose/td-hm_hrformer-s_8xb32-210e_coco-256x192.py']
model = dict(backbone=dict(arch={MINI}, init_cfg=None), head=dict(in_channels=8))
''',
    'cls': f'''
_base_ = [r'{ROOT}/configs/hrformer_cls/hrformer-t_8xb128_in1k.py']
model = dict(backbone=dict(arch={MINI}), neck=dict(in_channels=(8, 16, 32, 64)),
             head=dict(num_classes=5))
''',
}
HOSTS = {'seg': 'mmseg', 'pose': 'mmpose', 'cls': 'mmpretrain'}
CLASSES = ('ant', 'bee', 'cat', 'dog', 'eel')  # the classifier checkpoint's own data set
# (name, extra export arguments): seg at an odd size with free sizes, pose with free sizes at a
# small crop (the demo then feeds the config's 256x192), cls at its fixed test size.
EXPORTS = {
    'seg': ['--dynamic', '--shape', '45', '70'],
    'pose': ['--dynamic', '--shape', '64', '48', '--batch', '2'],
    'cls': ['--shape', '224', '224'],
}


def call(main, argv, capsys):
    """(exit status, stdout, stderr) of a command's ``main(argv)`` run in this process."""
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as exc:
        rc = exc.code
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def export_in_fixture(argv):
    """``call`` for module fixtures, which have no capsys (the export tool prints plainly; the
    hosts' inferencers print through rich, which keeps the stream it first saw: use ``call``)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = export.main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


def built(config: Path):
    from mmengine.config import Config
    cfg = Config.fromfile(str(config))
    cfg.model.setdefault('data_preprocessor', cfg.get('data_preprocessor'))
    return cfg, build_in_host(cfg.default_scope, cfg.model)


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    """Per task: the config, a checkpoint as training saves it, and the exported file with the
    tool's output."""
    tmp = tmp_path_factory.mktemp('deploy')
    result = {}
    for task, text in CONFIGS.items():
        config = tmp / f'{task}_mini.py'
        config.write_text(text)
        _, model = built(config)
        randomize_bn(model)
        meta = {'dataset_meta': {'classes': CLASSES}} if task == 'cls' else {}
        checkpoint = tmp / f'{task}.pth'
        torch.save({'state_dict': model.state_dict(), 'meta': meta}, checkpoint)
        onnx_file = tmp / 'exported' / f'{task}.onnx'
        rc, out, err = export_in_fixture([config, checkpoint, onnx_file, *EXPORTS[task]])
        assert rc == 0, err[-3000:]
        result[task] = dict(config=config, checkpoint=checkpoint, onnx=onnx_file, out=out)
    return result


def test_files_carry_their_contract_and_pass_the_checks(files):
    for task, f in files.items():
        model = onnx.load(str(f['onnx']))
        onnx.checker.check_model(model, full_check=True)
        meta = metadata.read(model)
        assert meta['task'] == {'seg': 'segmentation', 'pose': 'pose',
                                'cls': 'classification'}[task]
        assert meta['input']['name'] == 'image' and meta['input']['dtype'] == 'float32'
        assert meta['preprocessing']['swap_rb'] is True
        assert meta['verified'] and all(c['max_abs_diff'] <= c['allowed'] for c in
                                        meta['verified'])
        printed = f['out']
        assert 'largest difference' in printed and f'saved {f["onnx"]}' in printed
        assert 'TensorRT 10 operator list: all ops listed' in printed
    seg, pose, cls = (metadata.read(onnx.load(str(files[t]['onnx']))) for t in EXPORTS)
    assert seg['input']['shape'] == ['batch', 3, 'height', 'width']
    assert seg['output']['name'] == 'seg_logits' and seg['align_corners'] is True
    assert seg['labels'][:2] == ['road', 'sidewalk'] and len(seg['labels']) == 19
    assert len(seg['verified']) == 2 and seg['verified'][1]['shape'] == [2, 3, 33, 53]
    assert pose['output']['name'] == 'heatmaps' and pose['flip_test'] is True
    assert pose['codec']['type'] == 'MSRAHeatmap' and pose['codec']['input_size'] == [192, 256]
    assert [step['type'] for step in pose['test_pipeline']] == [
        'LoadImage', 'GetBBoxCenterScale', 'TopdownAffine', 'PackPoseInputs']
    assert pose['labels'][:2] == ['nose', 'left_eye'] and len(pose['labels']) == 17
    assert isinstance(pose['dataset_meta']['keypoint_colors'], np.ndarray)  # restored exactly
    assert cls['input']['shape'] == [1, 3, 224, 224] and cls['labels'] == list(CLASSES)
    assert 'classes: road | sidewalk' in files['seg']['out']


def test_ops_are_in_tensorrt10_operator_list(files):
    for f in files.values():
        model = onnx.load(str(f['onnx']))
        assert set(op_types(model)) <= TENSORRT10_OPS
        assert tensorrt10_problems(model) == []
    # The check does find what TensorRT 10's parser lacks.
    bad = onnx.helper.make_model(onnx.helper.make_graph(
        [onnx.helper.make_node('Col2Im', ['x', 's', 'b'], ['y']),
         onnx.helper.make_node('Resize', ['x', '', 's'], ['z'], mode='cubic'),
         onnx.helper.make_node('Squeeze', ['x', 's'], ['w'])],
        'g', [], []), opset_imports=[onnx.helper.make_opsetid('', 21)])
    problems = tensorrt10_problems(bad)
    assert any('Col2Im' in p for p in problems) and any("mode='cubic'" in p for p in problems)
    assert any('opset 21' in p for p in problems)
    assert any('Squeeze with axes computed at run time' in p for p in problems)


def test_seg_logits_equal_mmseg_predict_at_an_odd_size(files):
    """The dynamic file at a size and batch it was not exported with, against MMSeg's own
    data preprocessor + predict on uint8 BGR images (the input contract)."""
    from mmseg.structures import SegDataSample
    f = files['seg']
    cfg, segmentor = built(f['config'])
    segmentor.load_state_dict(torch.load(f['checkpoint'], weights_only=True)['state_dict'])
    segmentor.eval()
    images = torch.randint(0, 256, (2, 3, 97, 131), dtype=torch.uint8)
    samples = [SegDataSample(metainfo=dict(img_shape=(97, 131), ori_shape=(97, 131)))
               for _ in images]
    with torch.no_grad():
        data = segmentor.data_preprocessor(dict(inputs=list(images), data_samples=samples))
        expected = torch.stack([s.seg_logits.data for s in segmentor.predict(**data)])
    got = OnnxModel(f['onnx']).run(images.float().numpy())
    assert got.shape == (2, 19, 97, 131)
    np.testing.assert_allclose(got, expected.numpy(), rtol=1e-4, atol=1e-4 * expected.abs().max())


@pytest.mark.slow
def test_seg_argmax_file_gives_the_logits_argmax(files, tmp_path, capsys):
    f = files['seg']
    out = tmp_path / 'labels.onnx'
    rc, printed, err = call(export.main, [f['config'], f['checkpoint'], out, '--argmax',
                                          '--dynamic', '--shape', '40', '64'], capsys)
    assert rc == 0, err[-3000:]
    assert 'pixels labelled differently' in printed
    labels = OnnxModel(out)
    assert labels.metadata['output']['name'] == 'seg_labels'
    assert len(labels.metadata['labels']) == 19
    images = np.random.default_rng(0).integers(0, 256, (2, 3, 71, 57)).astype(np.float32)
    logits = OnnxModel(f['onnx']).run(images)
    np.testing.assert_array_equal(labels.run(images), logits.argmax(1)[:, None])


def test_cls_scores_equal_mmpretrain_predict(files):
    f = files['cls']
    _, classifier = built(f['config'])
    classifier.load_state_dict(torch.load(f['checkpoint'], weights_only=True)['state_dict'])
    images = torch.randint(0, 256, (3, 3, 224, 224), dtype=torch.uint8)
    with torch.no_grad():
        results = classifier.eval().test_step(dict(inputs=list(images), data_samples=None))
    expected = torch.stack([r.pred_score for r in results]).numpy()
    got = OnnxModel(f['onnx']).run(images.float().numpy())  # fixed batch 1: run in chunks
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(got.sum(1), 1, rtol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize('task', ['seg', 'pose', 'cls'])
def test_demo_on_the_file_draws_what_the_checkpoint_draws(task, files, tmp_path, capsys):
    f = files[task]
    image = POSE_IMAGE if task != 'seg' else SEG_IMAGE
    extra = ['--bboxes', '4,6,80,90', '20,10,60,70', '--kpt-thr', '0'] if task == 'pose' else []
    if task == 'pose':
        # A runner earlier in this process leaves MMEngine an OpenCV visualizer under the config's
        # name, which a build under that name hands back (MMPose 1.3's OpenCV drawing then fails
        # on numpy >= 2.3): the demos must build their own.
        from mmpose.visualization import PoseLocalVisualizer
        PoseLocalVisualizer.get_instance('visualizer', backend='opencv')
    outputs = {}
    for kind in ('checkpoint', 'onnx'):
        # MMPretrain's inferencer builds its pipeline in the current default scope, which the
        # other hosts' demos in this process set: scope it (a fresh process needs nothing).
        with DefaultScope.overwrite_default_scope(HOSTS[task]):
            rc, out, err = call(demo.main, [image, f['config'], f[kind], '--out-dir',
                                            tmp_path / kind, *extra], capsys)
        assert rc == 0, err[-3000:]
        # (MMPretrain's progress bar may end without a newline, before the demo's line)
        lines = [line[line.index(f'{image}: '):] for line in out.splitlines()
                 if f'{image}: ' in line]
        pictures = {p.name: p.read_bytes() for p in (tmp_path / kind).iterdir()}
        outputs[kind] = lines, pictures
    assert outputs['onnx'][0] and outputs['onnx'] == outputs['checkpoint']


def test_openvino_runs_the_files_as_onnxruntime(files):
    ov = pytest.importorskip('openvino')  # an optional extra: not in the pinned stack
    core = ov.Core()
    shapes = {'seg': (2, 3, 51, 77), 'pose': (3, 3, 256, 192), 'cls': (1, 3, 224, 224)}
    for task, shape in shapes.items():
        path = str(files[task]['onnx'])
        # f32: on CPUs with bf16 units OpenVINO's default precision there is bf16
        compiled = core.compile_model(core.read_model(path), 'CPU',
                                      {'INFERENCE_PRECISION_HINT': 'f32'})
        x = np.random.default_rng(0).integers(0, 256, shape).astype(np.float32)
        expected = OnnxModel(path).run(x)
        got = compiled(x)[compiled.outputs[0]]
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


@pytest.mark.parametrize('case', ['another task', 'not ONNX'])
def test_demo_refuses_a_file_of_another_task_or_no_file(case, files, tmp_path, capsys):
    onnx_file = files['cls']['onnx']
    if case == 'not ONNX':
        onnx_file = tmp_path / 'model.onnx'
        onnx_file.write_bytes(files['cls']['checkpoint'].read_bytes()[:5000])
    rc, _, err = call(demo.main, [SEG_IMAGE, files['seg']['config'], onnx_file,
                                  '--out-dir', tmp_path / 'out'], capsys)
    assert rc == 2 and err.count(': error: ') == 1 and 'Traceback' not in err, err[-2000:]
    assert ('exported for classification, the config is for segmentation' if case ==
            'another task' else 'onnxruntime cannot load it') in err
    assert not (tmp_path / 'out').exists()


def bad_rows():
    """(row name, arguments given the files fixture and a scratch folder, words in the line)."""
    return [
        ('missing checkpoint', lambda f, t: [f['seg']['config'], t / 'none.pth'], 'no such file'),
        ('foreign checkpoint', lambda f, t: [f['seg']['config'], f['pose']['checkpoint']],
         'a pose estimator checkpoint, the config builds a segmentor'),
        ('not a checkpoint', lambda f, t: [f['seg']['config'], f['seg']['config']],
         'truncated, corrupt or not a PyTorch checkpoint'),
        ('missing config', lambda f, t: [t / 'none.py', f['seg']['checkpoint']],
         'no such config file'),
        ('config that does not load', lambda f, t: [broken(t), f['seg']['checkpoint']],
         'not a config that loads'),
        ('config of no host', lambda f, t: [mmdet(t), f['seg']['checkpoint']],
         "default_scope 'mmdet' names no host"),
        ('size below 32', lambda f, t: [f['seg']['config'], f['seg']['checkpoint'], '--shape',
                                        '31', '64'], 'must be at least 32'),
        ('batch 0', lambda f, t: [f['seg']['config'], f['seg']['checkpoint'], '--batch', '0'],
         '--batch 0: must be at least 1'),
        ('opset 9', lambda f, t: [f['seg']['config'], f['seg']['checkpoint'], '--opset', '9'],
         '--opset 9: must be 11-20'),
        ('shape not a number', lambda f, t: [f['seg']['config'], f['seg']['checkpoint'],
                                             '--shape', 'tall', '64'],
         "argument --shape: invalid int value: 'tall'"),
        ('--argmax on pose', lambda f, t: [f['pose']['config'], f['pose']['checkpoint'],
                                           '--argmax'], '--argmax is for segmentation'),
        ('unknown option', lambda f, t: [f['cls']['config'], f['cls']['checkpoint'], '--fp16'],
         'unrecognized arguments: --fp16'),
        ('--cfg-options without =', lambda f, t: [f['pose']['config'], f['pose']['checkpoint'],
                                                  '--cfg-options', 'flip_test'],
         "--cfg-options: 'flip_test' is not KEY=VALUE"),
        ('--cfg-options into a value', lambda f, t: [
            f['pose']['config'], f['pose']['checkpoint'], '--cfg-options',
            'model.test_cfg.flip_test.x=1'], '--cfg-options: flip_test='),
    ]


def broken(tmp: Path) -> Path:
    (tmp / 'broken.py').write_text('model = dict(type=\n')
    return tmp / 'broken.py'


def mmdet(tmp: Path) -> Path:
    (tmp / 'mmdet_config.py').write_text("default_scope = 'mmdet'\nmodel = dict(type='SSD')\n")
    return tmp / 'mmdet_config.py'


@pytest.mark.parametrize('row', bad_rows(), ids=[r[0] for r in bad_rows()])
def test_bad_input_one_line_exit_2_no_file(row, files, tmp_path, capsys):
    _, args, words = row
    scratch = tmp_path / 'scratch'
    scratch.mkdir()
    out = tmp_path / 'out' / 'model.onnx'
    argv = args(files, scratch)
    rc, _, err = call(export.main, [*argv[:2], out, *argv[2:]], capsys)
    errors = [line for line in err.splitlines() if ': error: ' in line]
    assert rc == 2, err[-2000:]
    assert len(errors) == 1 and words in errors[0] and 'Traceback' not in err, err[-2000:]
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_output_path_is_a_folder(files, tmp_path, capsys):
    rc, _, err = call(export.main, [files['cls']['config'], files['cls']['checkpoint'], tmp_path],
                      capsys)
    assert rc == 2 and err.strip().endswith(f'{tmp_path}: is a folder; give the file to write')
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_a_file_off_pytorch_fails_and_is_removed(files, tmp_path, monkeypatch, capsys):
    from mmhrformer.deploy import onnx_export
    monkeypatch.setattr(onnx_export, 'RTOL', 0.0)  # any rounding difference is now too much
    monkeypatch.setattr(onnx_export, 'ATOL', 0.0)
    out = tmp_path / 'out' / 'cls.onnx'
    rc, _, err = call(export.main, [files['cls']['config'], files['cls']['checkpoint'], out],
                      capsys)
    assert rc == 2 and 'onnxruntime differs from PyTorch by' in err, err[-2000:]
    assert not any(out.parent.iterdir())


def test_wrapper_script_is_the_same_command(tmp_path):
    proc = subprocess.run([sys.executable, ROOT / 'tools' / 'deployment' / 'pytorch2onnx.py',
                           tmp_path / 'none.py', tmp_path / 'none.pth', tmp_path / 'm.onnx'],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1] == \
        f'hrformer-export: error: {tmp_path / "none.py"}: no such config file'


def test_mmseg_patch_only_while_exporting(files):  # after three exports in this process
    from mmseg.models.utils import wrappers
    assert wrappers.resize.__defaults__[-1] is True
    with pytest.raises(RuntimeError):
        with export_patches('mmseg'):
            assert wrappers.resize.__defaults__[-1] is False
            raise RuntimeError('an export failing half-way')
    assert wrappers.resize.__defaults__[-1] is True  # training and inference warn as before


def test_metadata_round_trip_keeps_arrays_and_int_keys():
    value = {'colors': np.arange(6, dtype=np.uint8).reshape(2, 3), 'id2name': {0: 'nose', 1: 'eye'},
             'links': [(0, 1)], 'name': 'coco'}
    back = metadata.decode(metadata.encode(value))
    assert back['colors'].dtype == np.uint8 and (back['colors'] == value['colors']).all()
    assert back['id2name'] == value['id2name'] and back['links'] == [[0, 1]]


@pytest.mark.slow
def test_fixed_size_file_holds_no_shape_arithmetic(files, tmp_path, capsys):
    """Without --dynamic every size is a constant (no op reads a shape), the file is a fraction
    of the free-size one, and it still equals PyTorch (the tool's check); --cfg-options reached
    the model (flip test off) and the metadata."""
    out = tmp_path / 'pose_fixed.onnx'
    rc, printed, err = call(export.main, [
        files['pose']['config'], files['pose']['checkpoint'], out, '--shape', '64', '48',
        '--batch', '2', '--cfg-options', 'model.test_cfg.flip_test=False'], capsys)
    assert rc == 0, err[-2000:]
    fixed, free = onnx.load(str(out)), onnx.load(str(files['pose']['onnx']))
    ops = op_types(fixed)
    assert not {'Shape', 'Cast', 'Unsqueeze', 'Concat', 'ConstantOfShape', 'Identity', 'Mod',
                'Constant'} & set(ops), ops
    assert ops['Gather'] == 1, ops  # the BGR -> RGB swap
    # Attention written out (MatMul + Softmax, the scale a constant), LayerNormalization fused.
    assert ops['Softmax'] == ops['LayerNormalization'] // 2 and 'Sqrt' not in ops, ops
    # The free-size file holds the flip test too: half its nodes are one pass.
    assert len(fixed.graph.node) < 0.5 * len(free.graph.node) / 2
    meta = metadata.read(fixed)
    assert meta['flip_test'] is False and meta['input']['shape'] == [2, 3, 64, 48]
    assert meta['cfg_options'] == {'model.test_cfg.flip_test': False}
    assert 'largest difference' in printed


@pytest.mark.slow
def test_speed_benchmark_smoke():
    """The benchmark's table at a small size (every model, file and runtime, one round)."""
    proc = subprocess.run([sys.executable, ROOT / 'benchmarks' / 'onnx_speed.py', '--repeats', '1',
                           '--warmup', '0', '--pose-shape', '64', '64', '--batches', '1',
                           '--no-seg', '--threads', '1'],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [line.split(' | ') for line in proc.stdout.splitlines() if line.startswith('| 1x3')]
    runtimes = ['onnxruntime', 'OpenVINO'] if 'OpenVINO not installed' not in proc.stdout else [
        'onnxruntime']  # an extra
    expected = [(model, kind, runtime) for model in ('this package', 'MMPose HRNet-W32',
                                                     'MMPose HRFormer-S')
                for kind in ('fixed', '--dynamic') for runtime in runtimes]
    assert [tuple(r[1:4]) for r in rows] == expected + [
        ('this package', 'PyTorch eager', 'PyTorch')], proc.stdout
    nodes = {tuple(r[1:3]): int(r[7].split(' / ')[0].replace(',', '')) for r in rows[:-1]}
    assert nodes[('this package', 'fixed')] < nodes[('this package', '--dynamic')] / 1.5
    assert all(re.fullmatch(r'\d+\.\d\dx', r[5]) for r in rows[:-1] if r[1] != 'MMPose '
               'HRNet-W32' or r[2] != 'fixed'), proc.stdout
    assert proc.stdout.count('NOT met') + proc.stdout.count(', met') == 3 * len(runtimes)
    assert 'processor: ' in proc.stdout and 'load average' in proc.stdout
