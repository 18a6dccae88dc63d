"""Two-process data-parallel training on the CPU through MMSeg's own tools/train.py (gloo
backend): both ranks end with bitwise identical weights, which training changed, and the checkpoint
holds them."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
# the quickstart's segmentation config (HRFormer-T OCRNet on demo/data/tiny_seg)
CONFIG = next((ROOT / 'configs' / 'quickstart').glob('ocrnet_*seg*.py'), None)
ITERS = 6


def free_port() -> int:
    # A fixed port collides with another run of the suite on the same machine.
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_rank_training_keeps_ranks_identical(tmp_path):
    assert CONFIG is not None, 'no configs/quickstart/ocrnet_*seg*.py'
    from mmhrformer.cli.host_tool import host_script
    sys.path.insert(0, str(Path(__file__).parent))
    from dist_cpu import digest

    train_py = host_script('mmseg', 'train')
    cfg = tmp_path / 'dist_cfg.py'
    cfg.write_text(
        f"_base_ = [{str(CONFIG)!r}]\n"
        "custom_imports = dict(imports=['mmhrformer', 'dist_cpu'], allow_failed_imports=False)\n"
        "custom_hooks = [dict(type='WeightsDigestHook')]\n"
        "model_wrapper_cfg = dict(type='MMDistributedDataParallel', device_ids=None)\n"
        "env_cfg = dict(dist_cfg=dict(backend='gloo'))\n"
        f"train_cfg = dict(max_iters={ITERS}, val_interval={ITERS})\n"
        f"default_hooks = dict(checkpoint=dict(interval={ITERS}), logger=dict(interval=2))\n")
    work = tmp_path / 'work'
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(Path(__file__).parent), os.environ.get('PYTHONPATH', '')]), OMP_NUM_THREADS='1')
    torchrun = Path(sys.executable).parent / 'torchrun'
    proc = subprocess.run(
        [str(torchrun), '--nproc_per_node', '2', '--master_port', str(free_port()),
         str(Path(__file__).parent / 'dist_cpu.py'), str(train_py), str(cfg),
         '--launcher', 'pytorch', '--work-dir', str(work)],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert 'Distributed training: True' in proc.stdout + proc.stderr

    def load(stage, rank):
        return json.loads((work / f'digest_{stage}_rank{rank}.json').read_text())

    before = [load('before', r) for r in (0, 1)]
    after = [load('after', r) for r in (0, 1)]
    for rec in before + after:
        assert rec['world_size'] == 2 and rec['model_wrapper'] == 'MMDistributedDataParallel'
    assert [rec['iter'] for rec in after] == [ITERS, ITERS]
    assert before[0]['params'] == before[1]['params']  # same initialisation on both ranks
    assert after[0]['params'] == after[1]['params']  # all-reduced gradients, same updates
    assert after[0]['params'] != before[0]['params']  # and training did update them
    # plain BN (no SyncBN on the CPU): running statistics are per rank, from each rank's own batches
    assert after[0]['buffers'] != after[1]['buffers']

    # the checkpoint (written by rank 0) holds exactly these weights
    ckpt = torch.load(work / f'iter_{ITERS}.pth', map_location='cpu', weights_only=False)
    assert ckpt['meta']['iter'] == ITERS
    state = ckpt['state_dict']
    assert digest({n: state[n] for n in after[0]['param_names']}) == after[0]['params']
    # and validation ran on both ranks' shards, merged: one mIoU line
    assert 'mIoU' in proc.stdout + proc.stderr


def _sync_bn_ffn_rank(rank, world, init_file, result_file):
    import torch.distributed as dist

    from mmhrformer.models.backbones.hrformer import ConvFFN
    dist.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank,
                            world_size=world)
    torch.manual_seed(0)
    ffn = ConvFFN(8, 32, dict(type='SyncBN')).train()
    x = torch.randn(4, 8, 6, 7)
    grad = torch.randn(4, 8, 6, 7)
    part = slice(2 * rank, 2 * rank + 2)
    xr = x[part].clone().requires_grad_()
    out = ffn(xr)
    out.backward(grad[part])
    grads = {n: p.grad.clone() for n, p in ffn.named_parameters()}
    for g in grads.values():
        dist.all_reduce(g)  # what data parallelism does with every parameter's gradient
    if rank == 0:
        torch.save(dict(out=out.detach(), x_grad=xr.grad, grads=grads,
                        buffers=dict(ffn.named_buffers())), result_file)
    dist.destroy_process_group()


def test_sync_bn_ffn_chain_matches_one_process_batch_norm(tmp_path):
    # Two processes with half a batch each and SyncBatchNorm compute what one process with
    # BatchNorm computes on the whole batch: outputs, input and parameter gradients, statistics.
    import torch.multiprocessing as mp

    from mmhrformer.models.backbones.hrformer import ConvFFN
    result = tmp_path / 'rank0.pt'
    mp.spawn(_sync_bn_ffn_rank, args=(2, str(tmp_path / 'init'), str(result)), nprocs=2)
    synced = torch.load(result)

    torch.manual_seed(0)
    ffn = ConvFFN(8, 32, dict(type='BN')).train()
    x = torch.randn(4, 8, 6, 7, requires_grad=True)
    grad = torch.randn(4, 8, 6, 7)
    out = ffn(x)
    out.backward(grad)
    torch.testing.assert_close(synced['out'], out[:2].detach(), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(synced['x_grad'], x.grad[:2], atol=1e-5, rtol=1e-4)
    scale = max(p.grad.abs().max() for p in ffn.parameters())
    for name, p in ffn.named_parameters():
        torch.testing.assert_close(synced['grads'][name], p.grad, atol=1e-5 * scale, rtol=1e-4,
                                   msg=name)
    for name, b in ffn.named_buffers():
        torch.testing.assert_close(synced['buffers'][name], b, atol=1e-5, rtol=1e-4, msg=name)
