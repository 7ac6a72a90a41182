"""What every second-stage network is: an ordinary MMSegmentation ``EncoderDecoder`` with 5
output classes (the 4 tissues and background, mask value 4), BN (mmseg's SyncBN has no CPU
implementation), cross-entropy with 255 (pseudo-mask pixels below the threshold) ignored, and a
plain whole-image test: one forward, argmax, no labels. The network files
(``segformer_mit_b1.py``, ``deeplabv3plus_r50.py``) add the backbone and the head types;
``decode_head`` holds the settings every head of theirs shares (DeepLabV3+'s auxiliary head
starts from it too).
"""
model = dict(
    type='EncoderDecoder',
    pretrained=None,
    decode_head=dict(
        num_classes=5,
        norm_cfg=dict(type='BN', requires_grad=True),
        align_corners=False,
        ignore_index=255,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
