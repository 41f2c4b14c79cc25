# Baseline for configs/ipswap_retinanet_r50_fpn_1x_coco.py: MMDetection's stock config, unchanged.
_base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'
