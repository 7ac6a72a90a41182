"""The runner prepares the very backbone file its runs will load, whatever the option spelling."""
from lpd_bench.runner.shared_weights import prepare_shared_weights
from helpers import REPO

CONFIG = 'configs/lpd_synth_cpu.py'


def test_string_option_values_are_read_as_the_tools_read_them(tiny_data):
    from mmseg.registry import MODELS

    from lpd_bench.apis import load_config
    from lpd_bench.models.backbone_pretraining import SyntheticPretrainedBackbone
    options = {'data_root': str(tiny_data), 'cpu_encoder': 'random',
               'model.backbone.init_cfg.pretrain.iters': '3'}  # as the plan holds it
    lines = []
    record = prepare_shared_weights([(CONFIG, options)], lines.append, cwd=REPO)
    assert record['failed'] == [], record
    [built] = record['built']
    assert built['kind'] == 'backbone' and '-it3-' in built['path']
    # the path a run computes from the same options given on its command line (DictAction: 3)
    cfg = load_config(str(REPO / CONFIG), {**options, 'model.backbone.init_cfg.pretrain.iters': 3},
                      init_scope=True)
    init = dict(cfg.model.backbone.init_cfg)
    init.pop('type')
    module = MODELS.build(dict(cfg.model.backbone, init_cfg=None))
    assert str(SyntheticPretrainedBackbone(**init).path(module, build=False)) == built['path']
