# Baseline for configs/ipswap_mask-rcnn_r50_fpn_1x_coco.py: MMDetection's stock config, unchanged.
# custom_imports only lets MMEngine checkpoints load under torch >= 2.6 (see README); it
# enables nothing else.
_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['ipswap_mm'], allow_failed_imports=False)
