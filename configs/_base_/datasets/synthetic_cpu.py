"""The default synthetic stand-in set (``data_root=None``: generated on first use, then reused),
sized for CPU: inputs resized to 112 x 112, small batches, no dataloader workers.

Only the images are resized: masks are loaded after the resize and stay at full size, and
predictions come back at the original size, so evaluation is at full resolution.
Its numbers are never BCSS-WSSS numbers.
"""
_base_ = ['./bcss_wsss.py']

data_root = None
input_size = (112, 112)
resize = dict(type='Resize', scale=input_size, keep_ratio=False)

# The base pipelines with the resize right after loading the image. Training decodes each
# image once per process (lpd_bench/data/image_cache.py: the same arrays, kept in memory; the
# small train split is read about ten times per run).
cached_load = dict(type='CachedLoadImageFromFile', max_cache_bytes=512 * 2**20)
train_pipeline = [cached_load, resize, *_base_.train_pipeline[1:]]
test_pipeline = [_base_.test_pipeline[0], resize, *_base_.test_pipeline[1:]]

cpu_loader = dict(num_workers=0, persistent_workers=False)
train_dataloader = dict(
    batch_size=8, **cpu_loader, dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=16, **cpu_loader, dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader  # merged into the base test loader: same overrides, split 'test'
