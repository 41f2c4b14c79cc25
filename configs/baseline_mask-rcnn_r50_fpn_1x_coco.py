# Baseline for configs/ipswap_mask-rcnn_r50_fpn_1x_coco.py: MMDetection's stock config, unchanged.
_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'
