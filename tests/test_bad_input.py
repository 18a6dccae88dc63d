"""Bad input at every command users type: one line naming the problem, exit status 2, no
traceback, nothing written.

One table of (command, arguments, words the error line must hold): the demo, the converter, the
ONNX export, the train and test launchers (``tools/train.py``, ``tools/test.py``, ``mim train /
test mmhrformer``) and the quickstart; a checkpoint whose settings differ from the config's is in
``test_checkpoint/test_settings.py``. Commands run in this process
through their ``main`` (what their console scripts call), so a traceback would fail the test as an
exception; one row per command also runs as a real subprocess.
"""
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mmhrformer.checkpoint import build_in_host
from mmhrformer.cli import demo, export, host_tool, hrformer2mmseg

ROOT = Path(__file__).resolve().parents[1]
SEG = ROOT / 'configs' / 'quickstart' / 'ocrnet_hrformer-t_tiny-seg.py'
POSE = ROOT / 'configs' / 'quickstart' / 'td-hm_hrformer-t_tiny-pose.py'
CLS = ROOT / 'configs' / 'hrformer_cls' / 'hrformer-t_8xb128_in1k.py'
SEG_IMAGES = ROOT / 'demo' / 'data' / 'tiny_seg' / 'img_dir' / 'val'


def load_tool(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def model_checkpoint(config: Path, path: Path) -> Path:
    """A checkpoint of the (randomly initialised) model a config builds, as training saves it."""
    from mmengine.config import Config
    cfg = Config.fromfile(str(config))
    model = build_in_host(cfg.default_scope, cfg.model)
    torch.save({'meta': {}, 'state_dict': model.state_dict()}, path)
    return path


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('bad')
    f = {'seg': model_checkpoint(SEG, tmp / 'seg.pth'),
         'pose': model_checkpoint(POSE, tmp / 'pose.pth'),
         'cls': model_checkpoint(CLS, tmp / 'cls.pth')}
    f['truncated'] = tmp / 'truncated.pth'
    f['truncated'].write_bytes(f['seg'].read_bytes()[:40000])
    f['text.jpg'] = tmp / 'not_an_image.jpg'
    f['text.jpg'].write_text('this is not a picture\n')
    (tmp / 'empty').mkdir()
    f['empty'] = tmp / 'empty'
    f['mixed'] = tmp / 'mixed'
    f['mixed'].mkdir()
    (f['mixed'] / 'a_good.jpg').write_bytes((SEG_IMAGES / 'val_000.jpg').read_bytes())
    (f['mixed'] / 'b_broken.jpg').write_text('not a picture either\n')
    f['mmdet.py'] = tmp / 'mmdet_config.py'
    f['mmdet.py'].write_text("default_scope = 'mmdet'\nmodel = dict(type='FasterRCNN')\n")
    f['missing'] = tmp / 'missing.pth'
    f['syntax.py'] = tmp / 'syntax_error.py'
    f['syntax.py'].write_text("default_scope = 'mmseg'\nmodel = dict(type='EncoderDecoder'\n")
    f['a file'] = tmp / 'a_file'
    f['a file'].write_text('not a folder\n')
    return f


def call(main, argv):
    """The exit status of a command's main(argv) run in this process."""
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as exc:
        rc = exc.code
    return rc


def quickstart_main(argv):
    return load_tool(ROOT / 'tools' / 'quickstart.py').parse_args(argv)


def launcher_test(argv):
    return host_tool.run('test', argv)


def launcher_train(argv):
    return host_tool.run('train', argv)


# (row name, main, arguments given the files fixture, words in the error line)
ROWS = [
    ('demo: missing image', demo.main,
     lambda f, out: [f['missing'].with_suffix('.jpg'), SEG, f['seg'], '--out-dir', out],
     'no such image or folder'),
    ('demo: a file of no image type', demo.main,
     lambda f, out: [ROOT / 'README.md', SEG, f['seg'], '--out-dir', out], 'not an image file'),
    ('demo: a text file named .jpg', demo.main,
     lambda f, out: [f['text.jpg'], SEG, f['seg'], '--out-dir', out], 'cannot be read as an image'),
    ('demo: seg config, pose checkpoint', demo.main,
     lambda f, out: [SEG_IMAGES, SEG, f['pose'], '--out-dir', out],
     'a pose estimator checkpoint, the config builds a segmentor'),
    ('demo: cls config, seg checkpoint', demo.main,
     lambda f, out: [SEG_IMAGES, CLS, f['seg'], '--out-dir', out],
     'a segmentor checkpoint, the config builds a classifier'),
    ('demo: truncated checkpoint', demo.main,
     lambda f, out: [SEG_IMAGES, SEG, f['truncated'], '--out-dir', out],
     'is truncated, corrupt or not a PyTorch checkpoint'),
    ('demo: missing checkpoint', demo.main,
     lambda f, out: [SEG_IMAGES, SEG, f['missing'], '--out-dir', out], 'no such checkpoint file'),
    ('demo: empty folder', demo.main,
     lambda f, out: [f['empty'], SEG, f['seg'], '--out-dir', out], 'no images'),
    ('demo: config of no installed host', demo.main,
     lambda f, out: [SEG_IMAGES, f['mmdet.py'], f['seg'], '--out-dir', out],
     "default_scope 'mmdet' names no host"),
    ('demo: unknown option value', demo.main,
     lambda f, out: [SEG_IMAGES, SEG, f['seg'], '--kpt-thr', 'high', '--out-dir', out],
     "argument --kpt-thr: invalid float value: 'high'"),
    ('demo: a config with a syntax error', demo.main,
     lambda f, out: [SEG_IMAGES, f['syntax.py'], f['seg'], '--out-dir', out],
     'syntax_error.py: not a config that loads (SyntaxError'),
    ('demo: --out-dir is a file', demo.main,
     lambda f, out: [SEG_IMAGES, SEG, f['seg'], '--out-dir', f['a file'] / 'pictures'],
     'a_file is a file, not a folder'),
    ('demo: --cfg-options item without KEY=', demo.main,
     lambda f, out: [SEG_IMAGES, SEG, f['seg'], '--out-dir', out, '--cfg-options', 'flip'],
     "--cfg-options: 'flip' is not KEY=VALUE"),
    ('converter: missing file', hrformer2mmseg.main,
     lambda f, out: [f['missing'], out / 'dst.pth'], 'no such file'),
    ('converter: truncated file', hrformer2mmseg.main,
     lambda f, out: [f['truncated'], out / 'dst.pth'], 'is truncated, corrupt'),
    ('converter: unknown option value', hrformer2mmseg.main,
     lambda f, out: [f['seg'], out / 'dst.pth', '--arch', 'huge'], "argument --arch: invalid choice"),
    ('test launcher: seg config, pose checkpoint', launcher_test,
     lambda f, out: [SEG, f['pose'], '--work-dir', out],
     'a pose estimator checkpoint, the config builds a segmentor'),
    ('test launcher: config of no installed host', launcher_test,
     lambda f, out: [f['mmdet.py'], f['seg'], '--work-dir', out], 'names no host'),
    ('test launcher: a config with a syntax error', launcher_test,
     lambda f, out: [f['syntax.py'], f['seg'], '--work-dir', out], 'not a config that loads'),
    ('train launcher: a config with a syntax error', launcher_train,
     lambda f, out: [f['syntax.py'], '--work-dir', out], 'not a config that loads'),
    ('export: seg config, pose checkpoint', export.main,
     lambda f, out: [SEG, f['pose'], out / 'seg.onnx'],
     'a pose estimator checkpoint, the config builds a segmentor'),
    ('export: truncated checkpoint', export.main,
     lambda f, out: [SEG, f['truncated'], out / 'seg.onnx'], 'is truncated, corrupt'),
    ('export: a size below 32', export.main,
     lambda f, out: [SEG, f['seg'], out / 'seg.onnx', '--shape', '16', '64'], '32'),
    ('export: config of no installed host', export.main,
     lambda f, out: [f['mmdet.py'], f['seg'], out / 'seg.onnx'], 'names no host'),
    ('quickstart: unknown option value', quickstart_main,
     lambda f, out: ['--iters', '0', '--work-dir', out], '--iters must be at least 1'),
]


@pytest.mark.parametrize('row', ROWS, ids=[r[0] for r in ROWS])
def test_bad_input_one_line_exit_2_nothing_written(row, files, tmp_path, capsys):
    _, main, args, words = row
    out = tmp_path / 'out'
    rc = call(main, args(files, out))
    _, err = capsys.readouterr()
    errors = [line for line in err.splitlines() if ': error: ' in line]
    assert rc == 2, err
    assert len(errors) == 1 and words in errors[0], err
    assert 'Traceback' not in err
    assert not out.exists() or not any(out.iterdir())


def test_demo_folder_goes_on_past_a_broken_image(files, tmp_path, capsys):
    out = tmp_path / 'out'
    rc = call(demo.main, [files['mixed'], SEG, files['seg'], '--out-dir', out])
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if ': error: ' in line]
    assert rc == 2
    assert len(errors) == 1 and 'b_broken.jpg: cannot be read as an image' in errors[0]
    assert [p.name for p in out.iterdir()] == ['a_good_seg.png']
    assert '1 picture(s) written' in captured.out
    # a checkpoint without dataset_meta: the config's class names, not MMSeg's Cityscapes default
    shares = next(line for line in captured.out.splitlines() if 'a_good.jpg: ' in line)
    assert any(name in shares for name in ('background', 'disc', 'square', 'triangle')), shares
    assert 'road' not in shares and 'sky' not in shares, shares


@pytest.mark.parametrize('command', [
    [ROOT / 'demo' / 'image_demo.py', '{text}', SEG, '{seg}'],
    [ROOT / 'tools' / 'test.py', SEG, '{pose}'],
], ids=['demo', 'test launcher'])
def test_as_a_subprocess(command, files, tmp_path):
    argv = [str(c).format(text=files['text.jpg'], seg=files['seg'], pose=files['pose'])
            for c in command]
    proc = subprocess.run([sys.executable, *argv, '--work-dir' if 'test.py' in argv[0] else
                           '--out-dir', tmp_path / 'out'], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    errors = [line for line in proc.stderr.splitlines() if ': error: ' in line]
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert len(errors) == 1 and 'Traceback' not in proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / 'out').exists() or not any((tmp_path / 'out').iterdir())
