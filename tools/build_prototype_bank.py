"""PBIP stage A (the prototype bank): ``python -m baselines.pbip.build_bank`` as a tool script.

    python tools/build_prototype_bank.py configs/pbip_synth_cpu.py [--out BANK.pth] \
        [--seed S] [--num-per-class K] [--cfg-options data_root=PATH ...]

See ``python tools/build_prototype_bank.py --help`` and baselines/pbip/build_bank.py.
"""
from baselines.pbip.build_bank import main

if __name__ == '__main__':
    main()
