# RetinaNet R-50-FPN, COCO 2017, 1x schedule (12 epochs), with IPS self-distillation.
# Everything but the IPS block comes from MMDetection's stock config.
_base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'

# ---------------------------------------------------------------- IPS block
custom_imports = dict(imports=['ipswap_mm'], allow_failed_imports=False)
train_dataloader = dict(
    batch_size=2,  # even: batches hold whole pairs
    # _delete_: a base sampler's own arguments (ClassAwareSampler's num_sample_class) are not kept
    sampler=dict(_delete_=True, type='IntraClassPairSampler', shuffle=True),
    batch_sampler=None)  # AspectRatioBatchSampler would split the pairs
model = dict(
    data_preprocessor=dict(
        batch_augments=[
            dict(
                type='DetPatchSwap',
                patch_size=32,
                swap_prob=0.5,
                swap_ratio=0.5,
                min_visible_area=16,
                min_visible_ratio=0.25)
        ]))
custom_hooks = [
    dict(
        type='IPSDistillHook',
        # loss_weight 0.1 and temperature 1 (the defaults): continuing a trained detector on the
        # digits benchmark, weight 1.0 halved its mAP, 0.1 beat the baseline, T=1 more than T=4
        loss=dict(type='PairKLDivLoss', temperature=1.0, loss_weight=0.1, teacher='confidence',
                  weighting='elements'),
        warmup_iters=0)  # iterations to ramp the pair loss in; 0: full weight from the start
]
# ---------------------------------------------------------------- end of IPS block
