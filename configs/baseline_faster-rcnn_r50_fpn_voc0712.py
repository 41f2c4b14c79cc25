# Baseline for configs/ipswap_faster-rcnn_r50_fpn_voc0712.py: MMDetection's stock config, unchanged.
_base_ = 'mmdet::pascal_voc/faster-rcnn_r50_fpn_1x_voc0712.py'
