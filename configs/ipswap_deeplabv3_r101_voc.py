# DeepLabV3 R-101-D8, Pascal VOC 2012 + aug, 512x512, 20k iterations, with IPS self-distillation:
# the R-50 IPS config with the backbone MMSegmentation's R-101 config uses.
_base_ = './ipswap_deeplabv3_voc.py'
model = dict(pretrained='open-mmlab://resnet101_v1c', backbone=dict(depth=101))
