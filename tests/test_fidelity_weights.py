"""Issue 10 item 9: the model hub's Swin-T reaches the refiner's frozen encoder unchanged.

A randomly initialised ``transformers`` Swin-T (every weight random, LayerNorms and bias tables
included, so that no mapping error can hide behind an identity or a zero) is saved in both hub
formats with ``save_pretrained``; the frozen encoder of the paper config, loading the hub file
directly or the converted file of tools/convert_weights.py, must give ``pooler_output`` on
2 x 3 x 224 x 224 inputs. Negative controls show that the tolerance separates the right mapping
from the plausible wrong ones (patch-merging order, mmseg's shift in a single-window stage).
Nothing is downloaded.
"""
import copy
import importlib.util
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import SwinConfig, SwinForImageClassification, SwinModel
from transformers.models.swin.modeling_swin import SwinPatchMerging

from helpers import SWIN_T_ENCODER
from lpd_bench.models.frozen_encoder import FrozenImageEncoder, load_state_dict_weights_only
from lpd_bench.models.original_swin import OriginalSwinTransformer, SingleWindowNoShiftMSA
from lpd_bench.models.swin_hub_weights import (convert_hub_swin, read_weights_file,
                                               relative_position_index, unfold_order_norm,
                                               unfold_order_reduction)
from mmseg.models.backbones.swin import ShiftWindowMSA, WindowMSA
from mmseg.models.utils.embed import PatchMerging
from mmseg.registry import MODELS

ATOL = 1e-4
TOOL = Path(__file__).resolve().parents[1] / 'tools' / 'convert_weights.py'


def swin_t_config(**overrides) -> SwinConfig:
    """The hub model's architecture (microsoft/swin-tiny-patch4-window7-224)."""
    return SwinConfig(image_size=224, patch_size=4, embed_dim=96, depths=[2, 2, 6, 2],
                      num_heads=[3, 6, 12, 24], window_size=7, **overrides)


def randomise(model: nn.Module, seed: int) -> nn.Module:
    """Every parameter random: weights ~ N(0, 1/fan_in), biases and LayerNorms off identity."""
    gen = torch.Generator().manual_seed(seed)

    def draw(p, std, mean=0.0):
        p.copy_(mean + std * torch.randn(p.shape, generator=gen))

    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.LayerNorm):
                draw(module.weight, 0.2, 1.0)
                draw(module.bias, 0.2)
            elif isinstance(module, (nn.Linear, nn.Conv2d)):
                draw(module.weight, module.weight[0].numel()**-0.5)
                if module.bias is not None:
                    draw(module.bias, 0.1)
        for name, p in model.named_parameters():
            if name.endswith('relative_position_bias_table'):
                draw(p, 1.0)
    return model.eval()


def swin_t_encoder(checkpoint=None, backbone_type=None) -> FrozenImageEncoder:
    """The paper config's encoder without its projection: the 768-d pooled last stage."""
    cfg = copy.deepcopy(SWIN_T_ENCODER)
    if backbone_type is not None:
        cfg['backbone']['type'] = backbone_type
    cfg.update(out_dim=None, checkpoint=None if checkpoint is None else str(checkpoint))
    return MODELS.build(cfg)


@pytest.fixture(scope='module')
def hub(tmp_path_factory):
    """A random hub Swin-T saved as the hub does, its input and its pooler_output."""
    root = tmp_path_factory.mktemp('hub')
    model = randomise(SwinModel(swin_t_config()), seed=0)
    model.save_pretrained(root / 'safetensors', safe_serialization=True)
    model.save_pretrained(root / 'bin', safe_serialization=False)
    classifier = SwinForImageClassification(swin_t_config(num_labels=3))
    classifier.swin.load_state_dict(model.state_dict())
    randomise(classifier.classifier, seed=1)
    classifier.save_pretrained(root / 'classifier', safe_serialization=True)
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        pooled = model(pixel_values=x).pooler_output
    files = {'safetensors': root / 'safetensors' / 'model.safetensors',
             'bin': root / 'bin' / 'pytorch_model.bin',
             'classifier': root / 'classifier' / 'model.safetensors'}
    return dict(files=files, x=x, pooled=pooled)


def max_diff(encoder, hub):
    with torch.no_grad():
        return (encoder(hub['x']) - hub['pooled']).abs().max().item()


def test_saved_files_have_the_published_layout(hub):
    """The files carry the keys of the published ones (what the converter must read)."""
    block = 'encoder.layers.0.blocks.1.attention.self'
    for name in ('safetensors', 'bin'):
        keys = read_weights_file(hub['files'][name]).keys()
        assert {f'{block}.query.weight', f'{block}.relative_position_bias_table',
                f'{block}.relative_position_index', 'encoder.layers.2.downsample.norm.weight',
                'layernorm.weight'} <= set(keys)
    keys = read_weights_file(hub['files']['classifier']).keys()
    assert f'swin.{block}.query.weight' in keys and 'classifier.weight' in keys
    assert hub['pooled'].shape == (2, 768) and hub['pooled'].std() > 0.1


@pytest.mark.parametrize('name', ['safetensors', 'bin'])
def test_hub_file_loaded_directly_gives_pooler_output(hub, name):
    """encoder_checkpoint=<hub file>: the paper encoder's pooled 768-d features are pooler_output."""
    encoder = swin_t_encoder(hub['files'][name])
    diff = max_diff(encoder, hub)
    print(f'\n{name}: max |encoder - pooler_output| = {diff:.3g}')
    assert diff <= ATOL


def test_paper_config_encoder_is_that_backbone_then_a_fixed_projection():
    assert SWIN_T_ENCODER['backbone']['type'] == 'OriginalSwinTransformer'
    assert SWIN_T_ENCODER['backbone']['out_indices'] == (3, )
    assert (SWIN_T_ENCODER['feature_dim'], SWIN_T_ENCODER['out_dim']) == (768, 512)


def test_classifier_file_converts_like_the_bare_model(hub):
    """SwinForImageClassification keys (swin. prefix, classifier head) give the same weights."""
    bare = convert_hub_swin(read_weights_file(hub['files']['bin']))
    prefixed = convert_hub_swin(read_weights_file(hub['files']['classifier']))
    assert set(prefixed) == set(bare) and not any('classifier' in k for k in prefixed)
    assert all(torch.equal(prefixed[k], bare[k]) for k in bare)


def load_tool():
    spec = importlib.util.spec_from_file_location('convert_weights', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tool_converts_to_an_mmseg_state_dict(hub, tmp_path, capsys):
    tool = load_tool()
    dst = tmp_path / 'out' / 'swin_tiny_mmseg.pth'
    assert tool.main([str(hub['files']['bin']), str(dst)]) == str(dst)
    assert 'mmseg SwinTransformer keys' in capsys.readouterr().out
    state = torch.load(dst, map_location='cpu', weights_only=True)
    # The same weights as the direct load of the hub file (whose output is checked above).
    expected = convert_hub_swin(read_weights_file(hub['files']['safetensors']))
    assert set(state) == set(expected) and all(torch.equal(state[k], expected[k]) for k in state)
    loaded = swin_t_encoder(dst).backbone.state_dict()
    assert set(loaded) == set(state)  # norm3 included, no classifier: a strict fit
    assert all(torch.equal(loaded[k], state[k]) for k in state)
    with pytest.raises(SystemExit) as exit_info:
        tool.main(['--help'])
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    assert 'encoder_checkpoint=' in help_text and 'model.safetensors' in help_text


def test_mmseg_shift_in_the_single_window_stage_differs(hub):
    """Control: mmseg's own rule (type='SwinTransformer') shifts stage 4 (7 x 7 = one window)."""
    mmseg_rule = swin_t_encoder(hub['files']['safetensors'], backbone_type='SwinTransformer')
    diff = max_diff(mmseg_rule, hub)
    print(f'\nmmseg shift rule: max |encoder - pooler_output| = {diff:.3g}')
    assert diff > 100 * ATOL


def test_patch_merging_order_matters(hub, tmp_path):
    """Control: the merge weights in transformers' block-wise order give other features."""
    state = read_weights_file(hub['files']['safetensors'])
    converted = convert_hub_swin(state)
    for stage in range(3):
        for name in ('reduction.weight', 'norm.weight', 'norm.bias'):
            converted[f'stages.{stage}.downsample.{name}'] = state[
                f'encoder.layers.{stage}.downsample.{name}']
    path = tmp_path / 'wrong_order.pth'
    torch.save(converted, path)
    diff = max_diff(swin_t_encoder(path), hub)
    print(f'\nmerge weights in transformers order: max |encoder - pooler_output| = {diff:.3g}')
    assert diff > 100 * ATOL


def test_single_window_rule():
    """No shift where min(H, W) <= window (3 here), mmseg's shifted attention elsewhere."""
    torch.manual_seed(0)
    rule = SingleWindowNoShiftMSA(embed_dims=6, num_heads=2, window_size=3, shift_size=1)
    nn.init.normal_(rule.w_msa.relative_position_bias_table)
    shifted = ShiftWindowMSA(embed_dims=6, num_heads=2, window_size=3, shift_size=1)
    unshifted = ShiftWindowMSA(embed_dims=6, num_heads=2, window_size=3, shift_size=0)
    shifted.load_state_dict(rule.state_dict())
    unshifted.load_state_dict(rule.state_dict())
    with torch.no_grad():
        for hw, same_as in [((3, 3), unshifted), ((2, 3), unshifted), ((3, 5), unshifted),
                            ((2, 2), unshifted), ((4, 6), shifted), ((6, 6), shifted)]:
            query = torch.randn(2, hw[0] * hw[1], 6)
            torch.testing.assert_close(rule(query, hw), same_as(query, hw))
        query = torch.randn(2, 9, 6)
        assert (shifted(query, (3, 3)) - unshifted(query, (3, 3))).abs().max() > 1e-2
    assert all(isinstance(block.attn, SingleWindowNoShiftMSA)
               for stage in OriginalSwinTransformer(depths=(2, 2), num_heads=(3, 6),
                                                    out_indices=(1, )).stages
               for block in stage.blocks)


def test_unfold_order_hand_case():
    """transformers: [x(0,0), x(1,0), x(0,1), x(1,1)] blocks of C; mmseg: C blocks of (0,0), (0,1),
    (1,0), (1,1). With C = 2 and columns numbered 0..7 in transformers' order, mmseg reads
    c0: x(0,0)=0, x(0,1)=4, x(1,0)=2, x(1,1)=6, then c1: 1, 5, 3, 7."""
    expected = torch.tensor([0, 4, 2, 6, 1, 5, 3, 7])
    assert torch.equal(unfold_order_reduction(torch.arange(8).reshape(1, 8)), expected[None])
    assert torch.equal(unfold_order_norm(torch.arange(8)), expected)


def test_patch_merging_modules_agree():
    torch.manual_seed(0)
    theirs = randomise(SwinPatchMerging(input_resolution=(4, 6), dim=3), seed=3)
    ours = PatchMerging(in_channels=3, out_channels=6, stride=2, norm_cfg=dict(type='LN'))
    ours.load_state_dict({'reduction.weight': unfold_order_reduction(theirs.reduction.weight),
                          'norm.weight': unfold_order_norm(theirs.norm.weight),
                          'norm.bias': unfold_order_norm(theirs.norm.bias)})
    x = torch.randn(2, 4 * 6, 3)
    with torch.no_grad():
        out, hw = ours(x, (4, 6))
        torch.testing.assert_close(out, theirs(x, (4, 6)))
    assert hw == (2, 3)


def test_relative_position_index_hand_case_and_both_libraries():
    """w = 2, tokens (0,0), (0,1), (1,0), (1,1): index = (dh + 1) * 3 + (dw + 1)."""
    assert relative_position_index(2).tolist() == [[4, 3, 1, 0], [5, 4, 2, 1], [7, 6, 4, 3],
                                                   [8, 7, 5, 4]]
    mmseg_index = WindowMSA(embed_dims=6, num_heads=3, window_size=(7, 7)).relative_position_index
    assert torch.equal(relative_position_index(7), mmseg_index)
    model = SwinModel(swin_t_config())
    hf_index = model.encoder.layers[0].blocks[0].attention.self.relative_position_index
    assert torch.equal(relative_position_index(7), hf_index)


def test_transformers5_names_convert_alike(hub):
    """transformers 5 names its modules q_proj/k_proj/v_proj/o_proj, relative_position_bias.*,
    mlp.fc1/fc2 and does not store the index: the same weights convert to the same dict."""
    state = read_weights_file(hub['files']['safetensors'])
    renames = [('attention.self.query', 'attention.q_proj'),
               ('attention.self.key', 'attention.k_proj'),
               ('attention.self.value', 'attention.v_proj'),
               ('attention.self.relative_position_bias_table',
                'attention.relative_position_bias.relative_position_bias_table'),
               ('attention.output.dense', 'attention.o_proj'), ('intermediate.dense', 'mlp.fc1'),
               ('output.dense', 'mlp.fc2')]
    renamed = {}
    for key, value in state.items():
        if key.endswith('relative_position_index'):
            continue
        for old, new in renames:
            key = key.replace(old, new)
        renamed[key] = value
    assert 'encoder.layers.0.blocks.0.mlp.fc2.weight' in renamed
    expected, converted = convert_hub_swin(state), convert_hub_swin(renamed)
    assert set(converted) == set(expected)
    assert all(torch.equal(converted[k], expected[k]) for k in expected)


def small_hub_state():
    """A two-stage transformers Swin (window 2): not a Swin-T."""
    config = SwinConfig(image_size=32, patch_size=4, embed_dim=12, depths=[1, 2],
                        num_heads=[1, 2], window_size=2)
    return randomise(SwinModel(config), seed=4).state_dict()


def test_errors_name_the_file_and_key(tmp_path):
    junk = tmp_path / 'notes.bin'
    junk.write_bytes(b'not a checkpoint at all')
    with pytest.raises(ValueError, match=r"notes\.bin.*neither a PyTorch file.*nor a safetensors"):
        load_state_dict_weights_only(str(junk))  # what FrozenImageEncoder(checkpoint=...) reads

    state = small_hub_state()
    path = tmp_path / 'model.safetensors'
    save_file({**state, 'embeddings.position_embeddings': torch.zeros(1, 64, 12)}, str(path))
    with pytest.raises(ValueError, match=r"model\.safetensors.*embeddings\.position_embeddings"):
        load_state_dict_weights_only(str(path))

    no_value = {k: v for k, v in state.items()
                if k != 'encoder.layers.1.blocks.0.attention.self.value.bias'}
    with pytest.raises(ValueError, match=r'stages\.1\.blocks\.0 .*has no v bias'):
        convert_hub_swin(no_value)
    wrong_index = dict(state)
    wrong_index['encoder.layers.0.blocks.0.attention.self.relative_position_index'] = \
        relative_position_index(2).T.contiguous()
    with pytest.raises(ValueError, match=r'relative_position_index of stages\.0\.blocks\.0'):
        convert_hub_swin(wrong_index)
    with pytest.raises(ValueError, match='not a transformers Swin'):
        convert_hub_swin({'stages.0.blocks.0.norm1.weight': torch.ones(3)})

    # A hub Swin of another size: converted, then refused by the Swin-T backbone, file named.
    small = tmp_path / 'small.safetensors'
    save_file(state, str(small))
    with pytest.raises(ValueError, match=r"small\.safetensors.*does not match backbone"):
        swin_t_encoder(small)


def test_missing_safetensors_is_a_clear_error(tmp_path, monkeypatch):
    path = tmp_path / 'model.safetensors'
    save_file({'embeddings.norm.weight': torch.ones(2)}, str(path))
    assert set(load_file(str(path))) == {'embeddings.norm.weight'}
    monkeypatch.setitem(sys.modules, 'safetensors', None)
    monkeypatch.setitem(sys.modules, 'safetensors.torch', None)
    with pytest.raises(ImportError, match='needs the safetensors package'):
        read_weights_file(path)
