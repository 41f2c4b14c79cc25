# Baseline for configs/ipswap_faster-rcnn_r50_fpn_voc0712.py: MMDetection's stock config, unchanged.
# custom_imports only lets MMEngine checkpoints load under torch >= 2.6 (see README); it
# enables nothing else.
_base_ = 'mmdet::pascal_voc/faster-rcnn_r50_fpn_1x_voc0712.py'
custom_imports = dict(imports=['ipswap_mm'], allow_failed_imports=False)
