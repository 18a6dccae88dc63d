"""Deployment paths: ONNX with the dynamo exporter (dynamic size, checked with onnxruntime),
torch.compile, AMP. hrformer-export's own ONNX tests: tests/test_deploy_tool.py."""
import warnings

import numpy as np
import pytest
import torch
from mmengine.config import ConfigDict

from builders import MINI_ARCH as MINI, randomize_bn  # tests/builders.py
from mmhrformer import HRFormer
from mmhrformer.checkpoint import ocrnet_cfg
from mmhrformer.deploy.host_patches import export_patches



def mini_ocrnet():
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    # align_corners=True as the shipped configs: MMSeg's resize() then calls int() on the sizes
    # for a warning, which torch.export would fix; the export runs under export_patches.
    model = MODELS.build(ConfigDict(ocrnet_cfg(dict(type='HRFormer', arch=MINI), num_classes=4,
                                               channels=MINI['channels'], head_channels=32,
                                               ocr_channels=16, align_corners=True)))
    model.init_weights()
    return model.eval()


class SegLogitsAndFeatures(torch.nn.Module):
    """OCRNet's ``tensor`` mode (``CascadeEncoderDecoder._forward``), plus the backbone's maps,
    so one export checks both; the backbone runs once (``_forward`` would run it again, doubling
    the graph and the export's time)."""

    def __init__(self, segmentor):
        super().__init__()
        self.segmentor = segmentor

    def forward(self, img):
        feats = self.segmentor.extract_feat(img)
        logits = self.segmentor.decode_head[0].forward(feats)
        for head in self.segmentor.decode_head[1:]:
            logits = head.forward(feats, logits)
        return (logits, *feats)


def onnx_outputs(path, x):
    import onnxruntime as ort
    sess = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    return sess.run(None, {sess.get_inputs()[0].name: x.numpy()})


def assert_outputs_match(onnx_outs, torch_outs):
    assert len(onnx_outs) == len(torch_outs)
    for o, t in zip(onnx_outs, torch_outs):
        assert o.shape == tuple(t.shape)
        np.testing.assert_allclose(o, t.numpy(), atol=2e-4, rtol=1e-3)


@pytest.fixture(scope='module')
def ocrnet():
    torch.manual_seed(0)
    model = SegLogitsAndFeatures(mini_ocrnet()).eval()
    randomize_bn(model)
    return model


@pytest.mark.slow
def test_onnx_dynamic_size_with_the_dynamo_exporter(ocrnet, tmp_path):
    # hrformer-export uses the TorchScript exporter (tests/test_deploy_tool.py, which supersedes
    # the fixed-size export test that was here); this keeps the dynamo exporter working on the
    # backbone and the shipped heads, with the MMSeg patch the tool applies.
    path = tmp_path / 'ocrnet_dynamic.onnx'
    # DYNAMIC, not named Dims: with named Dims torch.export first tries, and fails, to prove the
    # windows' padding arithmetic for every size in the range, and the exporter then traces again.
    dynamic = torch.export.Dim.DYNAMIC(min=32, max=4096)
    dims = {2: dynamic, 3: dynamic}
    with warnings.catch_warnings(), export_patches('mmseg'):
        warnings.simplefilter('ignore')
        torch.onnx.export(ocrnet, (torch.rand(1, 3, 64, 96), ), str(path), dynamo=True,
                          dynamic_shapes={'img': dims}, verbose=False)
    # Sizes with different padding and odd branch sizes than the one exported with.
    for size in [(64, 96), (70, 100), (97, 130), (32, 32)]:
        x = torch.rand(1, 3, *size)
        with torch.no_grad():
            expected = ocrnet(x)
        assert_outputs_match(onnx_outputs(path, x), expected)


@pytest.mark.slow
def test_torch_compile_inference_matches_eager(monkeypatch):
    # Inductor lowers, fuses and generates C++ kernels for the first transformer stage, on
    # branches that need padding (18x25 and 9x13 for windows of 7): window attention with its
    # padding mask and position bias, the FFN chain, the fusion's up- and down-sampling, every
    # op type of the model past its convolutional stem. The whole model (4.5x the kernels) took
    # two minutes; its capture as one graph: the next test. The kernels are scalar (simdlen 1):
    # the vectorizing code generator is inductor's machinery, not this model's, and took 40 %.
    from torch._inductor import config
    monkeypatch.setattr(config.cpp, 'simdlen', 1)
    model = HRFormer(arch=MINI, pad_mask=True).eval()
    randomize_bn(model)
    inputs = []  # stage 2's, as the model's own forward makes them
    hook = model.stage2.register_forward_pre_hook(lambda stage, args: inputs.append(args[0]))
    with torch.no_grad():
        model(torch.rand(1, 3, 70, 100))
        hook.remove()
        xs = inputs[0]
        assert [tuple(t.shape[-2:]) for t in xs] == [(18, 25), (9, 13)]
        compiled = torch.compile(model.stage2)
        for a, b in zip(compiled(xs), model.stage2(xs)):
            torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_torch_compile_training_block():
    # Graph capture and AOT autograd of a training step through one block (the custom FFN
    # conv-BN-GELU chain function included), gradients equal to eager; the aot_eager backend
    # skips inductor's C++ build, which the inference test covers.
    from mmhrformer.models.backbones.hrformer import HRFormerBlock
    block = HRFormerBlock(16, 2, 7, 0.0, True, False, dict(type='BN')).train()
    x = torch.randn(2, 16, 10, 17).contiguous(memory_format=torch.channels_last)
    compiled = torch.compile(block, backend='aot_eager', fullgraph=True)
    compiled(x).square().mean().backward()
    grads = {n: p.grad.clone() for n, p in block.named_parameters()}
    block.zero_grad()
    block(x).square().mean().backward()
    for n, p in block.named_parameters():
        torch.testing.assert_close(grads[n], p.grad, atol=1e-5, rtol=1e-4, msg=n)


def test_torch_compile_one_graph_per_mode_at_a_fixed_size():
    # What MMEngine's compile=True does to the backbone: the whole model is one graph, with no
    # graph break, in inference and in training; repeated calls at one input size reuse it, and
    # switching eval -> train (grad mode) is the only recompilation.
    from torch._dynamo.utils import counters
    torch._dynamo.reset()
    counters.clear()
    model = HRFormer(arch=MINI).eval()
    compiled = torch.compile(model, backend='eager')  # capture only: no code generation
    x = torch.rand(2, 3, 70, 100)
    with torch.no_grad():
        for _ in range(3):
            compiled(x)
    assert counters['stats']['unique_graphs'] == 1 and not counters['graph_break']
    model.train()
    for _ in range(3):
        sum(o.mean() for o in compiled(x)).backward()
    assert counters['stats']['unique_graphs'] == 2 and not counters['graph_break']


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_amp_forward_close_to_fp32(dtype):
    model = HRFormer(arch=MINI).eval()
    randomize_bn(model)
    x = torch.rand(1, 3, 70, 100)
    with torch.no_grad():
        ref = model(x)
        with torch.autocast('cpu', dtype=dtype):
            low = model(x)
    for r, o in zip(ref, low):
        assert torch.isfinite(o).all()
        rel = (o.float() - r).norm() / r.norm()
        assert rel < 0.05, f'{dtype}: relative error {rel:.3f}'


def test_amp_training_step_bf16():
    model = HRFormer(arch=MINI).train()
    x = torch.rand(2, 3, 64, 64)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss = sum(o.float().pow(2).mean() for o in model(x))
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
