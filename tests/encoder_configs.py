"""The frozen-encoder configs of the model configs, for tests (the configs are the one source)."""
from pathlib import Path

from mmengine.config import Config

MODEL_CONFIGS = Path(__file__).resolve().parents[1] / 'configs' / '_base_' / 'models'


def config_encoder(model_config: str) -> dict:
    """``model.decode_head.refiner_loss.encoder`` of ``configs/_base_/models/<model_config>``."""
    cfg = Config.fromfile(str(MODEL_CONFIGS / model_config))
    return cfg.model.decode_head.refiner_loss.encoder.to_dict()


#: The paper setting's ImageNet Swin-T (768 pooled -> fixed random 512), random weights here.
SWIN_T_ENCODER = config_encoder('lpd_mit_b1.py')
#: The CPU preset's random two-stage PatchMLPEncoder (8 px patches, widths 64/128).
CPU_PRESET_ENCODER = config_encoder('lpd_mit_tiny_cpu.py')
