"""Convert the model hub's ImageNet Swin-T into the mmseg SwinTransformer state dict of the refiner.

    python tools/convert_weights.py model.safetensors pretrain/swin_tiny_mmseg.pth

The logic is in :mod:`lpd_bench.models.swin_hub_weights`; see the --help text for the steps.
"""
import argparse

from lpd_bench.models.swin_hub_weights import HUB_MODEL, convert_hub_file

EPILOG = f"""\
From the hub file to a run:
  1. Download {HUB_MODEL} from the model hub: its model.safetensors
     (or pytorch_model.bin); config.json and the rest are not needed.
  2. Either convert it once:
       python tools/convert_weights.py model.safetensors pretrain/swin_tiny_mmseg.pth
     and pass the result:
       python tools/train.py configs/lpd_bcss.py --cfg-options data_root=/data/BCSS-WSSS \\
           backbone_checkpoint=mit_b1.pth encoder_checkpoint=pretrain/swin_tiny_mmseg.pth
     (likewise configs/pbip_bcss.py and tools/build_prototype_bank.py).
  3. or pass the hub file itself (it is converted on load, every time the model is built):
       --cfg-options encoder_checkpoint=model.safetensors
The output is a plain state dict (torch.save, mmseg SwinTransformer keys, ImageNet classifier
dropped) that loads with torch.load(weights_only=True). The paper configs' encoder
(OriginalSwinTransformer) then gives the hub model's pooler_output before its fixed projection.
"""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0], epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('src', help='hub file: model.safetensors or pytorch_model.bin '
                        '(transformers SwinModel / SwinForImageClassification keys)')
    parser.add_argument('dst', help='output .pth (mmseg SwinTransformer keys)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    state = convert_hub_file(args.src, args.dst)
    print(f'{args.src} -> {args.dst}: {len(state)} tensors, '
          f'{sum(v.numel() for v in state.values()):,} values (mmseg SwinTransformer keys)')
    return args.dst


if __name__ == '__main__':
    main()
