"""The frozen encoder's speed options compute what the default path computes (CPU, fp32):
SDPA window attention, channels-last patch embedding, torch.compile; the AMP dtype option reaches
the optimizer wrapper; the bench's encoder speed cases are opt-in and set what they name."""
import copy
import importlib.util
import os
import os.path as osp
import warnings

import pytest
import torch
from mmengine.config import Config
from mmseg.models.backbones.swin import ShiftWindowMSA, WindowMSA
from mmseg.registry import MODELS

from helpers import CPU_PRESET_ENCODER, REPO, SWIN_T_ENCODER
from lpd_bench.models.losses.mask_refiner import MaskRefinerLoss
from lpd_bench.models.original_swin import SdpaWindowMSA, set_window_attention

#: fp32 agreement of the SDPA / channels-last / compiled paths with the eager one.
TOL = dict(rtol=1e-5, atol=1e-5)
#: A small Swin (two stages, window 7) for the compile test: 56 px -> 14 x 14 (four shifted
#: windows) then 7 x 7 (one window, the original rule: no shift).
TINY_SWIN = dict(type='OriginalSwinTransformer', pretrain_img_size=56, embed_dims=32, patch_size=4,
                 window_size=7, mlp_ratio=2, depths=(2, 2), num_heads=(2, 4), strides=(4, 2),
                 out_indices=(1, ), qkv_bias=True, drop_rate=0.0, attn_drop_rate=0.0,
                 drop_path_rate=0.0, patch_norm=True)


def randomise_bias_tables(module, seed=0):
    """Relative-position bias tables of unit scale (the init's std 0.02 would hide a misplaced
    bias), the same for a given seed."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, WindowMSA):
                m.relative_position_bias_table.copy_(
                    torch.randn(m.relative_position_bias_table.shape, generator=gen))


def encoder_pair(cfg, seed=0, **options):
    """(default encoder, encoder with ``options``) with the same weights (random, bias tables
    randomised)."""
    torch.manual_seed(seed)
    base = MODELS.build(copy.deepcopy(cfg))
    randomise_bias_tables(base, seed)
    other = MODELS.build(dict(copy.deepcopy(cfg), **options))
    other.load_state_dict(base.state_dict())
    return base, other


def output_and_input_grad(fn, x):
    x = x.detach().clone().requires_grad_(True)
    out = fn(x)
    # A fixed random direction: every output element reaches the input gradient.
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    (out * weights).sum().backward()
    return out.detach(), x.grad


@pytest.mark.parametrize('shift_size', [0, 3])
@pytest.mark.parametrize('size', [14, 10])  # whole windows; padded to 14 (mmseg pads the map)
def test_sdpa_window_attention_equals_eager(shift_size, size):
    torch.manual_seed(0)
    msa = ShiftWindowMSA(embed_dims=64, num_heads=4, window_size=7, shift_size=shift_size).eval()
    randomise_bias_tables(msa)
    x = torch.randn(3, size * size, 64)
    eager = output_and_input_grad(lambda q: msa(q, (size, size)), x)
    assert set_window_attention(msa, 'sdpa') == 1 and type(msa.w_msa) is SdpaWindowMSA
    sdpa = output_and_input_grad(lambda q: msa(q, (size, size)), x)
    for a, b in zip(eager, sdpa):
        torch.testing.assert_close(b, a, **TOL)
    assert set_window_attention(msa, 'eager') == 1 and type(msa.w_msa) is WindowMSA
    torch.testing.assert_close(msa(x, (size, size)), eager[0], rtol=0, atol=0)


def test_sdpa_window_attention_with_any_mask_and_weight_gradients():
    """An arbitrary additive mask (nW, N, N) over a batch of several images' windows, and the
    gradients of the weights (bias table included: the bench's encoder_weight_grads case)."""
    torch.manual_seed(0)
    eager = WindowMSA(48, 3, (7, 7))
    randomise_bias_tables(eager)
    sdpa = copy.deepcopy(eager)
    set_window_attention(sdpa, 'sdpa')
    windows, images = 4, 3
    x = torch.randn(images * windows, 49, 48)
    mask = torch.randn(windows, 49, 49).mul(5).clamp(max=0)
    results = []
    for module in (eager, sdpa):
        out = module(x, mask=mask)
        out.pow(2).sum().backward()
        results.append([out.detach()] + [p.grad for p in module.parameters()])
    for a, b in zip(*results):
        torch.testing.assert_close(b, a, **TOL)


def test_encoder_sdpa_equals_eager_as_the_refiner_calls_it():
    """The paper encoder (OriginalSwinTransformer, Swin-T) at 224 px cut-outs: the stages' shifted
    windows (masks), stage 4's single unshifted window, output and gradient into the cut-outs,
    through MaskRefinerLoss.embed (fp32: encoder_autocast=None)."""
    refiners = []
    for attention in ('eager', 'sdpa'):
        torch.manual_seed(0)
        refiners.append(MaskRefinerLoss(4, encoder=dict(SWIN_T_ENCODER, attention=attention)))
    eager, sdpa = refiners
    randomise_bias_tables(eager.encoder)
    sdpa.encoder.load_state_dict(eager.encoder.state_dict())
    assert eager.encoder.attention == 'eager' and sdpa.encoder.attention == 'sdpa'
    assert sum(type(m) is SdpaWindowMSA for m in sdpa.modules()) == 12  # depths 2+2+6+2
    assert not any(type(m) is SdpaWindowMSA for m in eager.modules())
    cutouts = torch.randn(3, 3, 224, 224)
    results = [output_and_input_grad(refiner.embed, cutouts) for refiner in refiners]
    (out_e, grad_e), (out_s, grad_s) = results
    assert out_e.shape == (3, 512)
    torch.testing.assert_close(out_s, out_e, **TOL)
    torch.testing.assert_close(grad_s, grad_e, **TOL)


def test_encoder_sdpa_under_bf16_autocast_close_to_eager():
    """The paper config's encoder_autocast='bfloat16': both paths in bf16, close to each other."""
    eager_enc, sdpa_enc = encoder_pair(SWIN_T_ENCODER, attention='sdpa')
    cutouts = torch.randn(2, 3, 224, 224)
    outs = []
    for enc in (eager_enc, sdpa_enc):
        with torch.autocast('cpu', dtype=torch.bfloat16):
            outs.append(enc(cutouts).float())
    scale = outs[0].abs().max()
    assert (outs[1] - outs[0]).abs().max() <= 0.05 * scale


@pytest.mark.parametrize('size', [64, 100])  # maps smaller than a window; not multiples of 7
def test_encoder_sdpa_equals_eager_at_padded_sizes(size):
    eager_enc, sdpa_enc = encoder_pair(SWIN_T_ENCODER, attention='sdpa')
    x = torch.randn(2, 3, size, size)
    for a, b in zip(output_and_input_grad(eager_enc, x), output_and_input_grad(sdpa_enc, x)):
        torch.testing.assert_close(b, a, **TOL)


def test_sdpa_option_checks():
    with pytest.raises(ValueError, match="attention must be one of"):
        MODELS.build(dict(SWIN_T_ENCODER, attention='flash'))
    with pytest.raises(ValueError, match='needs a backbone with Swin window attention'):
        MODELS.build(dict(CPU_PRESET_ENCODER, attention='sdpa'))
    assert MODELS.build(dict(CPU_PRESET_ENCODER, attention='eager')).attention == 'eager'
    # mmseg's own SwinTransformer switches as well
    enc = MODELS.build(dict(SWIN_T_ENCODER, attention='sdpa',
                            backbone=dict(SWIN_T_ENCODER['backbone'], type='SwinTransformer')))
    assert sum(type(m) is SdpaWindowMSA for m in enc.modules()) == 12


def test_state_dict_unchanged_by_the_options():
    plain = MODELS.build(copy.deepcopy(SWIN_T_ENCODER))
    fast = MODELS.build(dict(copy.deepcopy(SWIN_T_ENCODER), attention='sdpa', channels_last=True))
    assert list(fast.state_dict()) == list(plain.state_dict())
    assert all(fast.state_dict()[k].shape == v.shape for k, v in plain.state_dict().items())


def test_channels_last_equals_default():
    plain, fast = encoder_pair(SWIN_T_ENCODER, channels_last=True)
    assert fast.channels_last and not plain.channels_last
    weight = fast.backbone.patch_embed.projection.weight
    assert weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()
    x = torch.randn(2, 3, 224, 224)
    for a, b in zip(output_and_input_grad(plain, x), output_and_input_grad(fast, x)):
        torch.testing.assert_close(b, a, **TOL)
    # loading a (contiguous) checkpoint keeps the layout
    fast.load_state_dict(plain.state_dict())
    assert fast.backbone.patch_embed.projection.weight.is_contiguous(
        memory_format=torch.channels_last)


def test_channels_last_does_nothing_without_convolutions():
    enc = MODELS.build(dict(CPU_PRESET_ENCODER, channels_last=True))
    assert not enc.channels_last
    x = torch.randn(2, 3, 16, 16)
    torch.testing.assert_close(enc(x), enc(x.contiguous(memory_format=torch.channels_last)))


def tiny_encoder_cfg(**options):
    return dict(type='FrozenImageEncoder', backbone=dict(TINY_SWIN), feature_dim=64, out_dim=32,
                **options)


#: torch.compile backends of the compile test: 'aot_eager' traces the backbone (Dynamo) and its
#: backward (AOTAutograd) as inductor does, without generating code (seconds); 'inductor' (the
#: default backend) takes minutes on 2 CPU cores: set LPD_TEST_INDUCTOR=1 to run it.
COMPILE_BACKENDS = ['aot_eager', pytest.param('inductor', marks=pytest.mark.skipif(
    not os.environ.get('LPD_TEST_INDUCTOR'), reason='minutes of C++ code generation on CPU; '
    'LPD_TEST_INDUCTOR=1 runs it'))]


@pytest.mark.slow
@pytest.mark.parametrize('backend', COMPILE_BACKENDS)
def test_compile_builds_and_equals_eager(backend):
    if not hasattr(torch, 'compile'):
        pytest.skip('torch.compile is not available in this torch')
    torch._dynamo.reset()
    plain, compiled = encoder_pair(tiny_encoder_cfg(), compile=dict(backend=backend),
                                   attention='sdpa')
    assert compiled.compiled
    assert list(compiled.state_dict()) == list(plain.state_dict())
    assert '_compiled_backbone' not in dict(compiled.named_modules())
    x = torch.randn(3, 3, 56, 56)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        result = output_and_input_grad(compiled, x)
    if not compiled.compiled:  # e.g. no working C++ toolchain for inductor here
        pytest.skip('torch.compile does not run here: ' + '; '.join(
            str(w.message) for w in caught if 'FrozenImageEncoder' in str(w.message))[:300])
    for a, b in zip(output_and_input_grad(plain, x), result):
        torch.testing.assert_close(b, a, **TOL)


def test_compile_unavailable_or_failing_falls_back_to_eager(monkeypatch):
    plain = MODELS.build(tiny_encoder_cfg())
    x = torch.randn(2, 3, 56, 56)

    def refuse(*args, **kwargs):
        raise RuntimeError('Dynamo is not supported here')

    monkeypatch.setattr(torch, 'compile', refuse)
    with pytest.warns(UserWarning, match='torch.compile failed .*runs eagerly'):
        enc = MODELS.build(tiny_encoder_cfg(compile=True))
    enc.load_state_dict(plain.state_dict())
    assert not enc.compiled
    torch.testing.assert_close(enc(x), plain(x), rtol=0, atol=0)

    def broken(module, **kwargs):
        assert kwargs == {'mode': 'reduce-overhead'}

        def call(inputs):
            raise RuntimeError('inductor: no C++ compiler')
        return call

    monkeypatch.setattr(torch, 'compile', broken)
    enc = MODELS.build(tiny_encoder_cfg(compile=dict(mode='reduce-overhead')))
    enc.load_state_dict(plain.state_dict())
    assert enc.compiled
    with pytest.warns(UserWarning, match='compiled backbone failed .*no C\\+\\+ compiler'):
        out = enc(x)
    assert not enc.compiled
    torch.testing.assert_close(out, plain(x), rtol=0, atol=0)

    monkeypatch.delattr(torch, 'compile')
    with pytest.warns(UserWarning, match='torch.compile is not available'):
        assert not MODELS.build(tiny_encoder_cfg(compile=True)).compiled


# ----------------------------------------------------------------------------- AMP dtype


def paper_optim_cfg(amp: bool) -> Config:
    return Config(dict(optim_wrapper=dict(
        type='AmpOptimWrapper' if amp else 'OptimWrapper',
        optimizer=dict(type='AdamW', lr=5e-5, betas=(0.9, 0.999), weight_decay=1e-3))))


def test_enable_amp_sets_the_dtype(monkeypatch):
    from lpd_bench.apis import enable_amp
    cfg = paper_optim_cfg(amp=True)  # the paper schedule on CUDA
    enable_amp(cfg, dtype='bfloat16')
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper' and cfg.optim_wrapper.dtype == 'bfloat16'
    cfg = paper_optim_cfg(amp=True)
    enable_amp(cfg)
    assert 'dtype' not in cfg.optim_wrapper  # --amp alone: as before
    cfg = paper_optim_cfg(amp=False)
    with pytest.raises(SystemExit, match='needs a CUDA device'):
        enable_amp(cfg, dtype='bfloat16')
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    enable_amp(cfg, dtype='bfloat16')
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper' and cfg.optim_wrapper.dtype == 'bfloat16'
    assert cfg.optim_wrapper.loss_scale == 'dynamic'
    with pytest.raises(SystemExit, match='--amp-dtype must be one of'):
        enable_amp(paper_optim_cfg(amp=True), dtype='float8')


def test_bf16_reaches_the_amp_optim_wrapper(monkeypatch):
    """What the runner builds from the config: mmengine's AmpOptimWrapper with cast_dtype bf16
    (its CUDA assertion patched away; GradScaler is disabled without CUDA)."""
    import mmengine.optim.optimizer.amp_optimizer_wrapper as amp_module
    from mmengine.optim import build_optim_wrapper
    from lpd_bench.apis import enable_amp
    cfg = paper_optim_cfg(amp=True)
    enable_amp(cfg, dtype='bfloat16')
    monkeypatch.setattr(amp_module, 'is_cuda_available', lambda: True)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # GradScaler: CUDA not available, disabled
        wrapper = build_optim_wrapper(torch.nn.Linear(2, 2), cfg.optim_wrapper)
    assert type(wrapper).__name__ == 'AmpOptimWrapper' and wrapper.cast_dtype == torch.bfloat16


def load_train_tool():
    spec = importlib.util.spec_from_file_location('lpd_train_tool', osp.join(REPO, 'tools',
                                                                             'train.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('argv,expected', [
    ([], None), (['--amp'], 'default'), (['--amp-dtype', 'bfloat16'], 'bfloat16'),
    (['--amp', '--amp-dtype', 'float16'], 'float16')])
def test_train_tool_amp_dtype_flag(monkeypatch, argv, expected):
    monkeypatch.setenv('LOCAL_RANK', '0')  # parse_args exports it
    tool = load_train_tool()
    calls = []
    cfg = paper_optim_cfg(amp=False)
    monkeypatch.setattr(tool, 'load_config_from_args', lambda args: cfg)
    monkeypatch.setattr(tool, 'enable_amp', lambda c, dtype=None: calls.append(dtype or 'default'))
    monkeypatch.setattr(tool, 'check_data', lambda *a: None)
    monkeypatch.setattr(tool, 'prepare_resume', lambda c: [], raising=False)  # if it has one

    class Runner:
        def train(self):
            pass

    monkeypatch.setattr(tool, 'build_runner', lambda c: Runner())
    tool.main(['configs/lpd_bcss.py', *argv])
    assert calls == ([] if expected is None else [expected])
    with pytest.raises(SystemExit):
        tool.build_parser().parse_args(['x.py', '--amp-dtype', 'float32'])


# ----------------------------------------------------------------------------- bench cases


def test_bench_autocast_optim_wrapper_on_cpu():
    """The bench's AMP cases on CPU: an OptimWrapper whose forward runs under bf16 autocast."""
    from lpd_bench.bench.cases import build_optim_wrapper
    cfg = paper_optim_cfg(amp=False)
    model = torch.nn.Linear(4, 4)
    wrapper = build_optim_wrapper(model, cfg, torch.device('cpu'), amp=True, dtype='bfloat16')
    with wrapper.optim_context(model):
        assert torch.is_autocast_enabled('cpu')
        assert model(torch.randn(2, 4)).dtype == torch.bfloat16
    assert not torch.is_autocast_enabled('cpu')
    plain = build_optim_wrapper(model, cfg, torch.device('cpu'))
    assert type(plain).__name__ == 'OptimWrapper'


def test_encoder_speed_cases_are_on_request_and_set_the_options():
    from lpd_bench.bench.cases import case_by_name, case_config, load_config, select_cases
    default = {c.name for c in select_cases('paper', None)}
    assert 'lpd_step_after' in default and 'backbone' in default
    assert not any('sdpa' in n or 'amp' in n for n in default)
    spec = case_by_name('paper', 'lpd_step_after_amp_bf16_sdpa_cl_compile')
    assert spec.on_request and spec.amp_dtype == 'bfloat16' and spec.train_iter == 'warmup'
    cfg = load_config(osp.join(REPO, case_config('paper', spec)), spec.cfg_options)
    encoder = cfg.model.decode_head.refiner_loss.encoder
    assert (encoder.attention, encoder.channels_last, encoder.compile) == ('sdpa', True, True)
    assert case_by_name('paper', 'backbone_amp_bf16').amp_dtype == 'bfloat16'
    assert [c.name for c in select_cases('paper', ['lpd_step_after_sdpa'])] == [
        'lpd_step_after_sdpa']
    cfg = load_config(osp.join(REPO, case_config('paper', spec)), {})
    assert 'attention' not in cfg.model.decode_head.refiner_loss.encoder  # committed: eager


@pytest.mark.slow  # builds the CPU preset's LPD model and runs two training steps
def test_amp_bench_case_runs_a_training_step_under_autocast():
    from lpd_bench.bench.cases import CaseSpec, case_config, prepared
    spec = CaseSpec('amp_step', 'train_step', 'lpd', train_iter='warmup', amp_dtype='bfloat16',
                    cfg_options={'model.decode_head.prototypes.num_per_class': 2,
                                 'backbone_init': 'scratch', 'cpu_encoder': 'random'})
    with prepared(spec, osp.join(REPO, case_config('cpu', spec)), 2, 64, 'cpu') as case:
        for _ in range(2):
            log_vars = case.run()
    assert all(torch.isfinite(torch.as_tensor(v)).all() for v in log_vars.values())
