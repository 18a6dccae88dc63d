"""The package as ``pip install .`` (not editable) installs it: a wheel built from this tree goes into
a scratch venv that sees the pinned stack but not this clone, and is used from another folder as a
user would: ``import mmhrformer``, the ``hrformer2mmseg`` console script, ``mim search mmhrformer``,
``mim train mmhrformer <config name>``, ``mim test mmhrformer ...``, then ``hrformer-export`` and
``hrformer-demo`` on the trained checkpoint and the wheel's own config. mim and MMEngine find a
package's configs and tools by its install path (``mmhrformer/.mim``), which an editable install
does not have: these paths only work, and are only tested, from a wheel."""
import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SEG = 'ocrnet_hrformer-t_tiny-seg.py'


def run(cmd, cwd, **kwargs):
    env = dict(os.environ, PYTHONUNBUFFERED='1', OMP_NUM_THREADS='1')
    env.pop('PYTHONPATH', None)
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True,
                          text=True, **kwargs)


@pytest.fixture(scope='module')
def wheel_venv(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('wheel')
    built = run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '-q',
                 '-w', tmp / 'dist', ROOT], cwd=tmp, timeout=300)
    assert built.returncode == 0, built.stderr[-3000:]
    wheel = next((tmp / 'dist').glob('mmhrformer-*.whl'))
    venv = tmp / 'venv'
    assert run([sys.executable, '-m', 'venv', '--without-pip', venv], cwd=tmp).returncode == 0
    python = venv / 'bin' / 'python'
    site = Path(run([python, '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'],
                    cwd=tmp).stdout.strip())
    # The pinned stack from this environment, as a plain path entry: its .pth files (this clone's
    # editable install among them) are not processed there.
    (site / 'pinned_stack.pth').write_text(sysconfig.get_paths()['purelib'] + '\n')
    installed = run([sys.executable, '-m', 'pip', '--python', python, 'install', '--no-deps', '-q',
                     wheel], cwd=tmp, timeout=300)
    assert installed.returncode == 0, installed.stderr[-3000:]
    work = tmp / 'user'  # not the clone: nothing is importable from the working directory
    work.mkdir()
    return venv, work, site


def site_package(venv, work) -> Path:
    """Where the wheel installed mmhrformer."""
    where = run([venv / 'bin' / 'python', '-c', 'import mmhrformer; print(mmhrformer.__file__)'],
                cwd=work)
    assert where.returncode == 0, where.stderr[-2000:]
    return Path(where.stdout.strip()).parent


@pytest.mark.slow
def test_wheel_ships_configs_tools_and_model_index(wheel_venv):
    venv, work, site = wheel_venv
    package = site_package(venv, work)
    assert package == site / 'mmhrformer'
    mim = package / '.mim'
    assert (mim / 'model-index.yml').is_file()
    assert (mim / 'tools' / 'train.py').is_file() and (mim / 'tools' / 'test.py').is_file()
    shipped = {p.relative_to(mim / 'configs') for p in (mim / 'configs').rglob('*.py')}
    in_clone = {p.relative_to(ROOT / 'configs') for p in (ROOT / 'configs').rglob('*.py')}
    assert shipped == in_clone
    assert (mim / 'demo' / 'data' / 'tiny_seg').is_dir()
    convert = run([venv / 'bin' / 'hrformer2mmseg', '--help'], cwd=work)
    assert convert.returncode == 0 and 'official' in convert.stdout
    bad = run([venv / 'bin' / 'hrformer2mmseg', 'missing.pth', 'out.pth'], cwd=work)
    assert bad.returncode == 2 and 'no such file' in bad.stderr and not (work / 'out.pth').exists()


@pytest.mark.slow
def test_mim_search_lists_every_config_with_its_official_metric(wheel_venv):
    venv, work, _ = wheel_venv
    proc = run([venv / 'bin' / 'python', '-c', 'from mim.cli import cli; cli()', 'search',
                'mmhrformer'], cwd=work, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    for name in ('ocrnet_hrformer-b-w15_4xb2-80k_cityscapes-512x1024',
                 'td-hm_hrformer-s-norpe_8xb32-210e_coco-256x192', 'hrformer-t_8xb128_in1k'):
        assert name in out, out[-3000:]
    leaves = [p for p in (ROOT / 'configs').rglob('*.py')
              if '_base_' not in p.parts and p.parent.name != 'quickstart']
    assert all(p.stem in out for p in leaves)
    assert '80.0' in out and '74.0' in out and '78.6' in out


@pytest.mark.slow
def test_mim_train_and_test_a_bare_config_name(wheel_venv):
    venv, work, _ = wheel_venv
    mim = [venv / 'bin' / 'python', '-c', 'from mim.cli import cli; cli()']
    train = run(mim + ['train', 'mmhrformer', SEG, '--work-dir', work / 'run', '--cfg-options',
                       'train_cfg.max_iters=2', 'train_cfg.val_interval=2',
                       'default_hooks.checkpoint.interval=2'], cwd=work, timeout=600)
    out = train.stdout + train.stderr
    assert train.returncode == 0, out[-4000:]
    assert re.search(r'find the config file in codebase mmhrformer', out)
    assert (work / 'run' / 'iter_2.pth').is_file()
    test = run(mim + ['test', 'mmhrformer', SEG, '--checkpoint', work / 'run' / 'iter_2.pth',
                      '--work-dir', work / 'test'], cwd=work, timeout=600)
    out = test.stdout + test.stderr
    assert test.returncode == 0, out[-4000:]
    assert re.search(r'Iter\(test\) .*mIoU: [\d.]+', out), out[-3000:]

    # The trained checkpoint through the installed console scripts, on the wheel's own config:
    # a verified ONNX file, and the demo on it (at the config's crop size, which the shipped
    # images have; free sizes: tests/test_deploy_tool.py).
    config = site_package(venv, work) / '.mim' / 'configs' / 'quickstart' / SEG
    export = run([venv / 'bin' / 'hrformer-export', config, work / 'run' / 'iter_2.pth',
                  work / 'seg.onnx'], cwd=work, timeout=600)
    assert export.returncode == 0, (export.stdout + export.stderr)[-3000:]
    assert 'onnxruntime vs PyTorch' in export.stdout and (work / 'seg.onnx').is_file()
    images = site_package(venv, work) / '.mim' / 'demo' / 'data' / 'tiny_seg' / 'img_dir' / 'val'
    demo = run([venv / 'bin' / 'hrformer-demo', images, config, work / 'seg.onnx', '--out-dir',
                work / 'pictures'], cwd=work, timeout=600)
    assert demo.returncode == 0, (demo.stdout + demo.stderr)[-3000:]
    assert len(list((work / 'pictures').glob('*_seg.png'))) == len(list(images.glob('*.jpg')))
