# Baseline for configs/ipswap_deeplabv3_voc.py: MMSegmentation's stock config, unchanged.
# custom_imports only lets MMEngine checkpoints load under torch >= 2.6 (see README); it
# enables nothing else.
_base_ = 'mmseg::deeplabv3/deeplabv3_r50-d8_4xb4-20k_voc12aug-512x512.py'
custom_imports = dict(imports=['ipswap_mm'], allow_failed_imports=False)
