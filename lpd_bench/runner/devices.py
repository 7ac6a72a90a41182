"""Where the runs of a plan run: ``lpd-bench run --gpus 0,1 --jobs N`` places up to N runs on each
GPU at a time, packing them while their memory allows.

A run's peak memory comes from the measured figures of ``lpd-bench bench`` when the caller has
them (``run_memory_gb``; None: unknown), a device's capacity from ``--gpu-memory`` or the device
itself. A run is placed on the device with a free slot where it fits and that holds the least
memory already (then the fewest runs); a run whose memory is unknown needs only a slot. A run
that fits nowhere waits, unless a device is idle: then it goes there alone (a run larger than a
device is tried rather than never started). Without ``--gpus`` there is one device, ``None`` (the
stage processes see whatever devices the runner sees), with ``--jobs`` slots.
"""
import threading
from typing import Dict, List, Optional, Sequence


class DeviceSlots:
    """Runs placed on devices (see the module docstring); thread-safe."""

    def __init__(self, devices: Sequence = (None, ), jobs: int = 1,
                 capacity_gb: Optional[Dict] = None):
        if jobs < 1:
            raise ValueError(f'jobs per device must be >= 1, got {jobs}')
        if not devices:
            raise ValueError('no devices to run on')
        self.devices: List = list(devices)
        self.jobs = jobs
        self.capacity_gb = dict(capacity_gb or {})
        self.running: Dict = {device: {} for device in self.devices}  # device -> {run: GiB}
        self.lock = threading.Lock()

    @property
    def slots(self) -> int:
        """Runs at a time over all devices."""
        return len(self.devices) * self.jobs

    def has_free_slot(self) -> bool:
        with self.lock:
            return any(len(runs) < self.jobs for runs in self.running.values())

    def used_gb(self, device) -> float:
        return sum(gb or 0.0 for gb in self.running[device].values())

    def fits(self, device, need_gb) -> bool:
        runs = self.running[device]
        if len(runs) >= self.jobs:
            return False
        capacity = self.capacity_gb.get(device)
        if need_gb is None or capacity is None or not runs:
            return True
        return self.used_gb(device) + need_gb <= capacity

    def place(self, run_id: str, need_gb: Optional[float] = None):
        """The device ``run_id`` goes to, now taken; ``False`` when it must wait."""
        with self.lock:
            candidates = [d for d in self.devices if self.fits(d, need_gb)]
            if not candidates:
                return False
            device = min(candidates, key=lambda d: (self.used_gb(d), len(self.running[d]),
                                                    self.devices.index(d)))
            self.running[device][run_id] = need_gb
            return device

    def release(self, run_id: str) -> None:
        with self.lock:
            for runs in self.running.values():
                runs.pop(run_id, None)


def parse_gpus(text: str) -> list:
    """``--gpus``: '0,1' -> ['0', '1'] (CUDA device indices, each once)."""
    devices = [part.strip() for part in str(text).split(',') if part.strip()]
    if not devices or not all(d.isdigit() for d in devices):
        raise ValueError(f'--gpus {text!r}: expected CUDA device indices, e.g. 0,1')
    if len(set(devices)) < len(devices):
        raise ValueError(f'--gpus {text!r} names a device twice')
    return devices


def device_memory_gb(devices) -> dict:
    """Total memory of each CUDA device index (GiB), {} when CUDA is not available here."""
    try:
        import torch
        if not torch.cuda.is_available():
            return {}
        return {d: torch.cuda.get_device_properties(int(d)).total_memory / 2**30
                for d in devices}
    except (ImportError, RuntimeError, AssertionError):
        return {}
