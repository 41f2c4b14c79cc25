# Baseline for configs/ipswap_deeplabv3_r101_voc.py: MMSegmentation's stock config, unchanged.
_base_ = 'mmseg::deeplabv3/deeplabv3_r101-d8_4xb4-20k_voc12aug-512x512.py'
