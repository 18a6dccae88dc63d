"""Compiled training through the hosts' runners: the same steps as eager, eager validation,
checkpoints that load in eager, resume, SyncBN across processes, bf16 autocast, DDP's buffer
broadcast turned off for CUDA graphs.

The runners' compiled runs capture with dynamo and run its graphs eagerly (``backend='eager'``):
the wiring, the parts, the graphs and their count; HRFormer-T's layout with one module per stage
and 8 channels per branch. A block and the SyncBN FFN go through AOTAutograd too (``aot_eager``:
forward and backward graphs, buffers written by the graph), as inductor gets them, without its
code generation, which would add minutes and no claim here (AOTAutograd alone costs 25 s more
for the runner's model).
"""
import itertools
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.optim import OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS
from mmengine.runner import Runner
from mmseg.registry import MODELS
from torch import nn

from mmhrformer.engine import compile_for_training, stop_buffer_broadcast
from mmhrformer.models.backbones.hrformer import HRFormerBlock

pytestmark = pytest.mark.usefixtures('one_thread')

ROOT = Path(__file__).resolve().parents[1]
SEG = ROOT / 'configs/quickstart/ocrnet_hrformer-t_tiny-seg.py'
POSE = ROOT / 'configs/quickstart/td-hm_hrformer-t_tiny-pose.py'
TINY = dict(num_modules=(1, 1, 1), channels=(8, 8, 8, 8), num_heads=(1, 1, 1, 1))
AOT_EAGER = dict(backend='aot_eager')
DYNAMO = dict(backend='eager')
RUNS = itertools.count()


@OPTIM_WRAPPERS.register_module(force=True)
class CPUBF16OptimWrapper(OptimWrapper):
    """MMEngine's AmpOptimWrapper needs CUDA: this runs the forward under CPU bf16 autocast."""

    def optim_context(self, model):
        return _Both(super().optim_context(model), torch.autocast('cpu', dtype=torch.bfloat16))


class _Both:

    def __init__(self, *contexts):
        self.contexts = contexts

    def __enter__(self):
        for c in self.contexts:
            c.__enter__()

    def __exit__(self, *exc):
        for c in reversed(self.contexts):
            c.__exit__(*exc)


class Recorder(Hook):
    """The first step's gradients, every step's loss, graphs compiled, the final BN statistics."""

    priority = 'LOWEST'

    def __init__(self):
        self.losses, self.grads, self.graphs = [], {}, []

    def before_train(self, runner):
        model = runner.model
        self.start_params = {n: p.detach().clone() for n, p in model.named_parameters()}
        for name, p in model.named_parameters():
            p.register_post_accumulate_grad_hook(self._keeper(runner, name))

    def _keeper(self, runner, name):

        def keep(param):
            if runner.iter == 0:
                self.grads[name] = param.grad.clone()

        return keep

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        from torch._dynamo.utils import counters
        self.losses.append(float(outputs['loss']))
        self.graphs.append(counters['stats']['unique_graphs'])

    def after_train(self, runner):
        self.buffers = {n: b.clone() for n, b in runner.model.named_buffers()
                        if 'running' in n}


def run(config, tmp_path, compile_cfg=None, iters=2, checkpoint_every=None, **changes):
    cfg = Config.fromfile(str(config))
    cfg.model.backbone.update(arch=TINY)
    if cfg.model.get('decode_head'):
        for head in cfg.model.decode_head:
            head.in_channels = [8] * 4
    else:
        cfg.model.head.in_channels = 8
    cfg.merge_from_dict(changes)
    cfg.train_cfg.update(max_iters=iters, val_interval=cfg.train_cfg.get('val_interval', iters))
    cfg.default_hooks.checkpoint.update(interval=checkpoint_every or iters)
    cfg.work_dir = str(tmp_path)
    # the logger is named by the second a Runner starts: runs started in one second would share one
    cfg.experiment_name = f'run{next(RUNS)}'
    if compile_cfg is not None:
        cfg.compile = compile_cfg
    runner = Runner.from_cfg(cfg)
    recorder = Recorder()
    runner.register_hook(recorder)
    runner.train()
    return runner, recorder


def assert_same_steps(eager, compiled, rtol):
    torch.testing.assert_close(compiled.losses, eager.losses, rtol=rtol, atol=0)
    assert eager.grads.keys() == compiled.grads.keys() and len(eager.grads) > 100
    scale = max(g.abs().max() for g in eager.grads.values())
    for name, grad in eager.grads.items():
        torch.testing.assert_close(compiled.grads[name], grad, rtol=rtol, atol=rtol * scale,
                                   msg=name)
    assert eager.buffers.keys() == compiled.buffers.keys() and len(eager.buffers) > 50
    for name, buf in eager.buffers.items():
        torch.testing.assert_close(compiled.buffers[name], buf, rtol=rtol, atol=rtol, msg=name)


@pytest.mark.slow
def test_mmseg_runner_compiled_steps_equal_eager(tmp_path):
    # DropPath on: eager draws new masks every step, so must the compiled step.
    changes = dict(model=dict(backbone=dict(drop_path_rate=0.3)),
                   train_cfg=dict(val_interval=1))
    eager_runner, eager = run(SEG, tmp_path / 'eager', **changes)
    runner, compiled = run(SEG, tmp_path / 'compiled', DYNAMO, **changes)
    assert_same_steps(eager, compiled, rtol=1e-4)
    assert compiled.losses[0] != compiled.losses[1]
    # one training graph per part at the first step; the validation after it (eval mode, eager)
    # and the second step added none
    assert compiled.graphs[0] >= 3 and compiled.graphs[1] == compiled.graphs[0]
    log = next(Path(runner.log_dir).glob('*.log')).read_text()
    assert "compile={'backend': 'eager'}: torch.compile with these options" in log
    assert log.count('Compiled: backbone, decode_head.0, decode_head.1.') == 1
    assert 'Model has been "compiled"' not in log  # MMEngine's own train_step compile did not run
    assert runner.cfg.compile == DYNAMO  # handed back to the config after the run
    assert 'HRFormer: compile' not in next(Path(eager_runner.log_dir).glob('*.log')).read_text()

    # the checkpoint holds the eager model's keys (resuming loads it before the hook compiles)
    state = torch.load(tmp_path / 'compiled' / 'iter_2.pth', weights_only=False)['state_dict']
    assert not [k for k in state if '_orig_mod' in k]
    MODELS.build(runner.cfg.model).load_state_dict(state, strict=True)


@pytest.mark.slow
def test_compiled_run_resumed_ends_with_the_uninterrupted_weights(tmp_path):
    # A compiled run's checkpoint resumed by a compiled run: MMEngine loads it into the eager
    # model before the hook compiles. Data without random augmentation and no drop path (resume
    # restores neither numpy's nor torch's generator), a seeded sampler.
    changes = dict(train_dataloader=dict(batch_size=2, dataset=dict(pipeline=[
        dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
        dict(type='PackSegInputs')])), randomness=dict(seed=0),
        default_hooks=dict(checkpoint=dict(max_keep_ckpts=2)))
    run(SEG, tmp_path / 'whole', DYNAMO, checkpoint_every=1, **changes)
    runner, _ = run(SEG, tmp_path / 'resumed', DYNAMO, resume=True,
                    load_from=str(tmp_path / 'whole' / 'iter_1.pth'), **changes)
    log = next(Path(runner.log_dir).glob('*.log')).read_text()
    assert 'resumed epoch: 0, iter: 1' in log and 'Compiled: backbone' in log
    whole, resumed = (torch.load(tmp_path / name / 'iter_2.pth', weights_only=False)['state_dict']
                      for name in ('whole', 'resumed'))
    middle = torch.load(tmp_path / 'whole' / 'iter_1.pth', weights_only=False)['state_dict']
    assert whole.keys() == resumed.keys()
    for key, value in whole.items():
        torch.testing.assert_close(resumed[key], value, atol=1e-6, rtol=1e-5, msg=key)
    assert any(not torch.equal(middle[k], v) for k, v in whole.items())  # it did train on


@pytest.mark.slow
def test_mmpose_runner_compiled_bf16_steps_equal_eager(tmp_path):
    # MMPose's training accuracy converts heatmaps to numpy, which has no bf16: off here
    changes = dict(optim_wrapper=dict(type='CPUBF16OptimWrapper'),
                   model=dict(train_cfg=dict(compute_acc=False)))
    _, eager = run(POSE, tmp_path / 'eager', **changes)
    runner, compiled = run(POSE, tmp_path / 'compiled', DYNAMO, **changes)
    # bf16 rounding (8 bits of mantissa): under capture the model runs its reference ops, whose
    # bf16 intermediate results round differently from the fast paths'
    assert_same_steps(eager, compiled, rtol=2e-2)
    assert compiled.graphs[1] == compiled.graphs[0] > 0
    log = next(Path(runner.log_dir).glob('*.log')).read_text()
    assert 'Compiled: backbone, head.' in log


def test_block_traced_with_its_backward_equals_eager():
    # aot_eager: AOTAutograd's forward and backward graphs, BN statistics written by the graph,
    # DropPath's masks drawn inside it; two steps, so a mask fixed at tracing would show.
    results = []
    for compiled in (False, True):
        torch.manual_seed(0)
        holder = nn.Module()
        holder.backbone = HRFormerBlock(8, 1, 4, drop_path=0.5, with_rpe=True, pad_mask=False,
                                        norm_cfg=dict(type='BN')).train()
        if compiled:
            compile_for_training(holder, AOT_EAGER)
        outs = []
        for _ in range(2):
            out = holder.backbone(torch.randn(4, 8, 6, 5))
            out.square().sum().backward()
            outs.append(out.detach())
        results.append((outs, {n: p.grad for n, p in holder.named_parameters()},
                        {n: b for n, b in holder.named_buffers()}))
    (eager_outs, eager_grads, eager_bufs), (outs, grads, bufs) = results
    assert not torch.equal(eager_outs[0][:1], eager_outs[1][:1])
    torch.testing.assert_close(outs, eager_outs)
    # a conv bias before a BN has a zero gradient up to rounding: errors against the largest
    scale = max(g.abs().max() for g in eager_grads.values())
    torch.testing.assert_close(grads, eager_grads, rtol=1e-5, atol=1e-5 * scale)
    torch.testing.assert_close(bufs, eager_bufs)
    assert int(bufs['backbone.ffn.norm1.num_batches_tracked']) == 2


def _sync_bn_rank(rank, world, init_file, result_file):
    import torch.distributed as dist

    from mmhrformer.models.backbones.hrformer import ConvFFN
    dist.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank,
                            world_size=world)
    torch.set_num_threads(1)
    results = {}
    for compiled in (False, True):
        torch.manual_seed(0)
        holder = nn.Module()
        holder.backbone = ConvFFN(8, 32, dict(type='SyncBN')).train()
        if compiled:
            compile_for_training(holder, AOT_EAGER)
        x = torch.randn(4, 8, 6, 7)[2 * rank:2 * rank + 2].requires_grad_()
        out = holder.backbone(x)
        out.backward(torch.randn(4, 8, 6, 7)[2 * rank:2 * rank + 2])
        results[compiled] = dict(out=out.detach(), x_grad=x.grad,
                                 grads={n: p.grad for n, p in holder.named_parameters()},
                                 buffers=dict(holder.named_buffers()))
    ddp = nn.parallel.DistributedDataParallel(nn.BatchNorm2d(2))
    flag = stop_buffer_broadcast(ddp)
    results['stopped'] = (flag, getattr(ddp, flag), stop_buffer_broadcast(ddp),
                          stop_buffer_broadcast(ddp.module))
    if rank == 0:
        torch.save(results, result_file)
    dist.destroy_process_group()


def test_sync_bn_compiled_equals_eager_across_processes(tmp_path):
    import torch.multiprocessing as mp
    result = tmp_path / 'rank0.pt'
    # spawned, not forked: a fork of a pytest-xdist worker that has compiled before (threads of
    # execnet and of the compiler) failed in its rank
    mp.start_processes(_sync_bn_rank, args=(2, str(tmp_path / 'init'), str(result)), nprocs=2,
                       start_method='spawn')
    results = torch.load(result)
    # CUDA graphs' guard: DDP's per-forward buffer broadcast is turned off once, and said so
    assert results.pop('stopped') in [('forward_sync_buffers', False, None, None),
                                      ('broadcast_buffers', False, None, None)]
    eager, compiled = results.values()
    for key in ('out', 'x_grad'):
        torch.testing.assert_close(compiled[key], eager[key], rtol=1e-5, atol=1e-6)
    for kind in ('grads', 'buffers'):
        assert compiled[kind].keys() == eager[kind].keys()
        for name, value in eager[kind].items():
            torch.testing.assert_close(compiled[kind][name], value, rtol=1e-5, atol=1e-6,
                                       msg=name)
