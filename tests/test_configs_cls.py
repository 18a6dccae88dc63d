"""The ImageNet configs (configs/hrformer_cls): the official recipe, weight decay groups, a loss and
predict step through the config's own data preprocessor, and MMPretrain's inferencer."""
from pathlib import Path

import numpy as np
import pytest
import torch

import official  # tests/official.py
from mmhrformer import ARCH_ZOO, convert_official_classifier
from shared import shipped_config  # tests/shared.py

REPO = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO / 'configs' / 'hrformer_cls'


CONFIGS = {'tiny': 'hrformer-t_8xb128_in1k.py', 'small': 'hrformer-s_8xb128_in1k.py',
           'base': 'hrformer-b_8xb128_in1k.py'}


DROP_PATH = {'tiny': 0.0, 'small': 0.0, 'base': 0.2}


@pytest.fixture(scope='module', autouse=True)
def mmpretrain_scope():
    from mmpretrain.utils import register_all_modules
    register_all_modules(init_default_scope=True)


def build(cfg):
    from mmpretrain.registry import MODELS
    return MODELS.build(cfg)


@pytest.mark.parametrize('arch', ['tiny', 'small', 'base'])
def test_configs_follow_the_official_recipe(arch):
    cfg = shipped_config(CONFIG_DIR / CONFIGS[arch])
    assert cfg.default_scope == 'mmpretrain'
    assert cfg.custom_imports == dict(imports=['mmhrformer'], allow_failed_imports=False)
    assert cfg.model.backbone.arch == arch
    assert cfg.model.backbone.drop_path_rate == DROP_PATH[arch]
    assert tuple(cfg.model.neck.in_channels) == ARCH_ZOO[arch]['channels']
    assert cfg.train_dataloader.batch_size * 8 == cfg.auto_scale_lr.base_batch_size == 1024
    opt = cfg.optim_wrapper
    assert opt.optimizer.type == 'AdamW' and opt.optimizer.lr == pytest.approx(5e-4 * 1024 / 512)
    assert opt.optimizer.weight_decay == 0.05 and opt.clip_grad.max_norm == 5.0
    assert opt.optimizer.fused
    assert cfg.train_cfg.max_epochs == 300
    warmup, cosine = cfg.param_scheduler
    assert warmup.type == 'LinearLR' and warmup.end == 20 and cosine.begin == 20
    assert cosine.type == 'CosineAnnealingLR' and cosine.end == 300
    assert [a.type for a in cfg.model.train_cfg.augments] == ['Mixup', 'CutMix']
    assert [a.alpha for a in cfg.model.train_cfg.augments] == [0.8, 1.0]
    assert cfg.model.head.loss.label_smooth_val == 0.1
    pipeline = {t.type: t for t in cfg.train_dataloader.dataset.pipeline}
    assert pipeline['RandAugment'].magnitude_level == 9
    assert pipeline['RandAugment'].magnitude_std == 0.5
    assert pipeline['RandomErasing'].erase_prob == 0.25


def test_weight_decay_groups():
    from mmengine.optim import build_optim_wrapper
    cfg = shipped_config(CONFIG_DIR / CONFIGS['tiny'])
    model = build(cfg.model)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    decay = {id(p): g['weight_decay'] for g in wrapper.optimizer.param_groups for p in g['params']}
    names = dict(model.named_parameters())
    assert len(decay) == len(names)
    for name, p in names.items():
        no_decay = p.ndim == 1 or name.endswith('relative_position_bias_table')
        assert decay[id(p)] == (0.0 if no_decay else 0.05), name


def test_config_model_loss_and_predict():
    from mmpretrain.structures import DataSample
    cfg = shipped_config(CONFIG_DIR / CONFIGS['tiny'])
    # As MMEngine's Runner does: the config's data_preprocessor goes into the model.
    model = build(dict(cfg.model, data_preprocessor=cfg.data_preprocessor))
    model.init_weights()
    data = dict(inputs=[torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8) for _ in range(2)],
                data_samples=[DataSample().set_gt_label(i) for i in (3, 999)])
    batch = model.data_preprocessor(data, training=True)  # Mixup / CutMix happen here
    assert batch['data_samples'][0].gt_score.shape == (1000, )
    losses = model(**batch, mode='loss')
    assert torch.isfinite(losses['loss'])
    losses['loss'].backward()
    assert model.neck.final_layer[0].weight.grad is not None
    assert model.backbone.conv1.weight.grad is not None

    model.eval()
    with torch.no_grad():
        preds = model(**model.data_preprocessor(data, training=False), mode='predict')
    assert len(preds) == 2
    assert preds[0].pred_score.shape == (1000, )
    assert preds[0].pred_score.sum().item() == pytest.approx(1.0, abs=1e-5)


def test_inferencer_runs_on_a_converted_checkpoint(tmp_path):
    from mmpretrain.apis import ImageClassificationInferencer
    converted = convert_official_classifier(official.random_state_dict('tiny'))
    ckpt = tmp_path / 'hrformer-t_converted.pth'
    torch.save({'state_dict': converted, 'meta': {}}, ckpt)
    inferencer = ImageClassificationInferencer(
        model=str(CONFIG_DIR / CONFIGS['tiny']), pretrained=str(ckpt), device='cpu')
    state = inferencer.model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in converted.items())
    image = np.random.default_rng(0).integers(0, 256, (180, 240, 3), dtype=np.uint8)
    result = inferencer(image)[0]
    assert len(result['pred_scores']) == 1000
    assert 0 <= result['pred_label'] < 1000
