"""Weights that need other settings than the config's: the commands refuse with the config to use,
the hosts' tools warn, and the exact loads stay silent.

Two backbone settings change every output but no shape (``with_rpe``, ``upsample_mode``), and
openseg's weights saw BGR images: a load cannot notice them. What each file needs comes from its
layout (as downloaded), its ``meta`` (converted here, trained here) or its bias tables.
"""
import logging
import re
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.runner import load_checkpoint

import official  # tests/official.py
from builders import mmpose_hrformer  # tests/builders.py
from mmhrformer import HRFormer
from mmhrformer.checkpoint import (CheckpointError, build_in_host, check_against_config, convert,
                                   ocrnet_cfg)
from mmhrformer.checkpoint.settings import shipped_settings, write_settings_index
from mmhrformer.cli import demo, export, host_tool

pytestmark = pytest.mark.usefixtures('one_thread')  # tests/conftest.py

ROOT = Path(__file__).resolve().parents[2]
POSE_S = ROOT / 'configs' / 'hrformer_pose' / 'td-hm_hrformer-s_8xb32-210e_coco-256x192.py'
POSE_S_NORPE = POSE_S.with_name('td-hm_hrformer-s-norpe_8xb32-210e_coco-256x192.py')
POSE_T = ROOT / 'configs' / 'quickstart' / 'td-hm_hrformer-t_tiny-pose.py'
SEG_T = ROOT / 'configs' / 'quickstart' / 'ocrnet_hrformer-t_tiny-seg.py'
POSE_IMAGES = ROOT / 'demo' / 'data' / 'tiny_pose' / 'val'
NO_RPE = 'official pose weights were trained without the relative position bias; this config ' \
         'has with_rpe=True'


def official_pose_file(path: Path, arch: str, width: int) -> Path:
    """A pose checkpoint as the official mmpose 0.x fork saves it (random weights; the ImageNet
    bias tables still in it, the last module fused into branch 0 only)."""
    sd = {k: v for k, v in official.backbone_only(official.random_state_dict(arch, seed=3),
                                                  'backbone.').items()
          if not re.match(r'backbone\.stage4\.1\.fuse_layers\.[123]', k)}
    sd['keypoint_head.final_layer.weight'] = torch.randn(17, width, 1, 1) * 0.2
    sd['keypoint_head.final_layer.bias'] = torch.randn(17)
    torch.save({'meta': {'epoch': 210}, 'state_dict': sd}, path)
    return path


@pytest.fixture(scope='module')
def pose_s(tmp_path_factory):
    return official_pose_file(tmp_path_factory.mktemp('s') / 'hrt_small_coco_256x192.pth',
                              'small', 32)


@pytest.fixture(scope='module')
def pose_t(tmp_path_factory):
    return official_pose_file(tmp_path_factory.mktemp('t') / 'hrt_tiny_coco.pth', 'tiny', 18)


@contextmanager
def warnings_logged():
    """The WARNING lines MMEngine's current logger writes meanwhile (the suite keeps it at ERROR
    otherwise: tests/conftest.py)."""
    lines = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: lines.append(record.getMessage())
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    logger.addHandler(handler)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def hrformer_warnings(lines):
    return [line for line in lines if line.startswith('HRFormer: ') and 'trained' in line]


# ---- the commands refuse, naming the file, the setting, both values and the config to use ----

def test_the_official_pose_file_with_the_rpe_config_is_refused_naming_the_config(pose_s):
    with pytest.raises(CheckpointError) as err:
        check_against_config(str(POSE_S), str(pose_s))
    assert str(err.value) == (
        f'{pose_s}: {NO_RPE}: use configs/hrformer_pose/td-hm_hrformer-s-norpe_8xb32-210e_coco-'
        '256x192.py')
    check_against_config(str(POSE_S_NORPE), str(pose_s))  # the config it names takes it


def test_an_edited_config_is_read_past_the_stale_index(tmp_path):
    # The index names the fitting config at once (tests/test_configs.py holds it to the shipped
    # configs); after an edit, the configs as they are now count.
    root = tmp_path / 'configs'
    shutil.copytree(POSE_T.parent, root / 'quickstart')
    write_settings_index(root)
    assert shipped_settings(root)['quickstart/' + POSE_T.name]['with_rpe'] is True
    with open(root / 'quickstart' / POSE_T.name, 'a') as f:
        f.write("model['backbone']['with_rpe'] = False\n")
    assert shipped_settings(root)['quickstart/' + POSE_T.name]['with_rpe'] is False


@pytest.mark.parametrize('command', ['demo', 'export', 'test launcher'])
def test_every_command_refuses_in_one_line(command, pose_t, tmp_path, capsys):
    out = tmp_path / 'out'
    argv = {'demo': [POSE_IMAGES, POSE_T, pose_t, '--out-dir', out],
            'export': [POSE_T, pose_t, out / 'pose.onnx'],
            'test launcher': [POSE_T, pose_t, '--work-dir', out]}[command]
    main = {'demo': demo.main, 'export': export.main,
            'test launcher': lambda a: host_tool.run('test', a)}[command]
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as exc:
        rc = exc.code
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if ': error: ' in line]
    assert rc == 2, err
    # No shipped HRFormer-T pose config without the bias: the line says what to set.
    assert len(errors) == 1 and errors[0].endswith(
        f'{pose_t}: {NO_RPE}: set model.backbone.with_rpe=False (in the config, or with '
        '--cfg-options)'), err
    assert not out.exists() or not any(out.iterdir())


def test_the_test_launcher_applies_cfg_options_before_checking(pose_t):
    assert host_tool.cfg_options(['--work-dir', 'w', '--cfg-options',
                                  'model.backbone.with_rpe=False']) == {
                                      'model.backbone.with_rpe': False}
    with pytest.raises(CheckpointError, match='with_rpe=True'):
        check_against_config(str(POSE_T), str(pose_t))
    check_against_config(str(POSE_T), str(pose_t), {'model.backbone.with_rpe': False})


def test_converted_files_carry_their_settings(official_tiny, tmp_path):
    # openseg: the channel order is in meta, and the commands hold the config to it.
    source = official.openseg_checkpoint(official_tiny, num_classes=4, window=7)
    state, meta = convert(source)
    assert meta['data_preprocessor'] == {'bgr_to_rgb': False}
    assert meta['model_settings']['upsample_mode'] == 'nearest'
    path = tmp_path / 'ocrnet_t.pth'
    torch.save({'state_dict': state, 'meta': meta}, path)
    # The quickstart's data and pipelines, openseg's OCR heads (512 / 256 channels).
    cfg = Config.fromfile(str(SEG_T))
    model = ocrnet_cfg(dict(type='mmhrformer.HRFormer', arch='tiny'), 4, (18, 36, 72, 144))
    cfg.model = Config(dict(model, data_preprocessor=cfg.model.data_preprocessor)).to_dict()
    assert cfg.model.data_preprocessor.bgr_to_rgb
    config = tmp_path / 'ocrnet_hrformer-t_openseg.py'
    cfg.dump(str(config))
    with pytest.raises(CheckpointError) as err:
        check_against_config(str(config), str(path))
    assert str(err.value) == (
        f'{path}: official segmentation (openseg) weights (converted) were trained on BGR images '
        'normalised with RGB-ordered mean and std; this config has bgr_to_rgb=True: set '
        'model.data_preprocessor.bgr_to_rgb=False (in the config, or with --cfg-options)')
    check_against_config(str(config), str(path), {'model.data_preprocessor.bgr_to_rgb': False})
    # The demo takes the same --cfg-options.
    out = tmp_path / 'pictures'
    image = ROOT / 'demo' / 'data' / 'tiny_seg' / 'img_dir' / 'val' / 'val_000.jpg'
    assert demo.main([str(image), str(config), str(path), '--out-dir', str(out)]) == 2
    assert not out.exists()
    assert demo.main([str(image), str(config), str(path), '--out-dir', str(out), '--cfg-options',
                      'model.data_preprocessor.bgr_to_rgb=False']) == 0
    assert [p.name for p in out.iterdir()] == ['val_000_seg.png']


def test_files_trained_here_carry_their_settings_in_their_config(tmp_path):
    cfg = Config.fromfile(str(SEG_T))
    cfg.model.backbone.upsample_mode = 'bilinear'
    model = build_in_host('mmseg', cfg.model)
    path = tmp_path / 'iter_200.pth'
    torch.save({'meta': {'cfg': cfg.pretty_text, 'iter': 200}, 'state_dict': model.state_dict()},
               path)
    with pytest.raises(CheckpointError, match=re.escape(
            "these weights were trained with upsample_mode='bilinear'; this config has "
            "upsample_mode='nearest'")):
        check_against_config(str(SEG_T), str(path))
    check_against_config(cfg, str(path))


def test_the_refusal_names_the_files_own_layout(official_tiny, tmp_path):
    path = tmp_path / 'hrt_tiny_ocr.pth'
    torch.save(official.openseg_checkpoint(official_tiny, num_classes=5, window=7), path)
    small = build_in_host('mmseg', ocrnet_cfg(dict(type='mmhrformer.HRFormer', arch='small'), 5,
                                              (32, 64, 128, 256)))
    with pytest.raises(CheckpointError, match=r'\(official-seg layout; its shapes say '
                       r'HRFormer-tiny, the config builds HRFormer-small\)'):
        load_checkpoint(small, str(path))


# ---- the hosts' tools warn in one line, and load ----

def test_load_checkpoint_warns_once_and_loads(pose_t):
    model = build_in_host('mmpose', Config.fromfile(str(POSE_T)).model)
    with warnings_logged() as lines:
        load_checkpoint(model, str(pose_t))
    assert hrformer_warnings(lines) == [
        f'HRFormer: {NO_RPE}: evaluated so, the outputs are not their source\'s (fine-tuning so '
        'may be meant; to evaluate, set model.backbone.with_rpe=False)']


@pytest.mark.parametrize('source, model_mode, words', [
    ('official-cls', 'bilinear', "official classification weights were trained with "
     "upsample_mode='nearest'; this config has upsample_mode='bilinear'"),
    # MMPose's ImageNet backbones are the official classification weights renamed.
    ('mmpose imagenet', 'bilinear', "MMPose ImageNet weights were trained with "
     "upsample_mode='nearest'; this config has upsample_mode='bilinear'"),
    ('mmpose topdown', 'nearest', "MMPose weights were trained with upsample_mode='bilinear'; "
     "this config has upsample_mode='nearest'"),
])
def test_init_cfg_warns_about_the_upsampling(source, model_mode, words, official_tiny, tmp_path):
    path = tmp_path / 'pretrained.pth'
    if source == 'official-cls':
        sd = {'model': official_tiny}
    else:
        backbone = mmpose_hrformer('tiny', 'bilinear', multiscale=source == 'mmpose imagenet')
        sd = {'state_dict': {f'backbone.{k}': v for k, v in backbone.state_dict().items()}}
        if source == 'mmpose topdown':
            sd['state_dict']['head.final_layer.weight'] = torch.randn(17, 18, 1, 1)
            sd['state_dict']['head.final_layer.bias'] = torch.randn(17)
    torch.save(sd, path)
    model = HRFormer(arch='tiny', upsample_mode=model_mode,
                     out_indices=(0, 1, 2, 3) if source != 'mmpose topdown' else (0, ),
                     init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    with warnings_logged() as lines:
        model.init_weights()
    assert len(hrformer_warnings(lines)) == 1 and words in hrformer_warnings(lines)[0]


def test_own_weights_with_the_bias_into_a_model_without_warn():
    trained = HRFormer(arch='tiny')
    model = HRFormer(arch='tiny', with_rpe=False)
    with warnings_logged() as lines:
        model.load_state_dict(trained.state_dict())
    assert hrformer_warnings(lines) == [
        'HRFormer: these weights were trained with the relative position bias; this config has '
        'with_rpe=False: evaluated so, the outputs are not their source\'s (fine-tuning so may '
        'be meant; to evaluate, set model.backbone.with_rpe=True)']


def test_exact_loads_stay_silent(official_tiny, pose_t, tmp_path):
    cfg = Config.fromfile(str(POSE_T))
    cfg.model.backbone.with_rpe = False
    model = build_in_host('mmpose', cfg.model)
    cls = HRFormer(arch='tiny', init_cfg=dict(type='Pretrained', checkpoint=str(
        tmp_path / 'cls.pth')))
    torch.save({'model': official_tiny}, tmp_path / 'cls.pth')
    with warnings_logged() as lines:
        load_checkpoint(model, str(pose_t))
        cls.init_weights()
        HRFormer(arch='tiny').load_state_dict(HRFormer(arch='tiny').state_dict())
    assert hrformer_warnings(lines) == []


@pytest.mark.slow
def test_mmposes_own_test_tool_warns(pose_t, tmp_path):
    # MMPose's tools/test.py (not this package's launcher) on the shipped tiny data.
    script = host_tool.host_script('mmpose', 'test')
    proc = subprocess.run([sys.executable, str(script), str(POSE_T), str(pose_t), '--work-dir',
                           str(tmp_path / 'work')], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, env={**__import__('os').environ, 'OMP_NUM_THREADS': '1'})
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert f'WARNING - HRFormer: {NO_RPE}: evaluated so' in log, log[-3000:]
    assert 'coco/AP' in log
