# The official seg schedule: AdamW 1e-4, wd 0.01 (no decay on norms, biases, bias tables),
# mixed precision.
_base_ = ['mmseg::_base_/schedules/schedule_80k.py']
optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0,
                       custom_keys={'relative_position_bias_table': dict(decay_mult=0.0)}))
# param_scheduler: set by each dataset base (warm-up 1500 iters, then poly to its last iteration).
