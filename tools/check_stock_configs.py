"""Which stock MMDetection / MMSegmentation configs train with the README's IPS block.

For every config: the stock config with the project's IPS block merged (the block between
the ``IPS block`` markers of ``configs/ipswap_mask-rcnn_r50_fpn_1x_coco.py`` or
``configs/ipswap_deeplabv3_voc.py``; lists the base config already has, such as YOLOX's
``custom_hooks`` and ``batch_augments``, are kept and the block's entries appended, as the
README's ``_base_`` form does), ``swap_prob=1``, the model as the config builds it with
random weights (no pretrained download; SyncBN as BN), then one ``train_step`` on a
generated batch of pairs that share a class: images of ``--size`` pixels with boxes, and
the instance masks and semantic map the config's training pipeline loads (detection), or
label maps (segmentation).

A config ends as one of:

* ``trains``: the step ran, logged a finite loss and a finite ``loss_ips_kl`` with a gradient (its
  value is reported), and left the model's ``state_dict`` keys as they were (an IPS checkpoint loads into the baseline);
* ``rejected``: ``ipswap_mm`` refused the model with a ``TypeError`` (the message names the head);
* ``fails``: anything else raised (the last line of the error is reported).

``--baseline`` runs the same step without the block, to tell a failure of this harness's
generated batch from one of IPS. ``make test`` runs this tool on a few configs
(``tests/tools/test_check_stock_configs.py``); the full lists took 3.5 (segmentation) and 9.3
minutes (detection) of steps on 2 cores at commit 11bded9. It exits 1 when a config fails with
the block and trains without it (``--baseline``), or fails with no baseline run to tell.

    python tools/check_stock_configs.py --task det --out docs/stock_configs_det.json
    python tools/check_stock_configs.py --task seg --out docs/stock_configs_seg.json
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import os.path as osp
import sys
import time
import traceback
from typing import Optional, Tuple

import numpy as np
import torch
from mmengine.logging import MMLogger

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from ipswap_mm.core.label_edges import label_edges  # noqa: E402
from tools.arguments import positive_int  # noqa: E402

BLOCK_SOURCE = {'det': 'ipswap_mask-rcnn_r50_fpn_1x_coco.py', 'seg': 'ipswap_deeplabv3_voc.py'}
SCOPE = {'det': 'mmdet', 'seg': 'mmseg'}

# (stock config, image side): DDOD's and PAA's assigners, and SSD's last layers need more
# than 128 pixels; DINO selects 900 encoder points as queries, which 128 pixels do not have
DET_CONFIGS = [
    ('faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py', 128),
    ('faster_rcnn/faster-rcnn_r50_fpn_ohem_1x_coco.py', 320),  # at 320 OHEM's sampler mines
    ('mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py', 128),
    ('mask_rcnn/mask-rcnn_r50-caffe-c4_1x_coco.py', 128),
    ('cascade_rcnn/cascade-mask-rcnn_r50_fpn_1x_coco.py', 128),
    ('htc/htc_r50_fpn_1x_coco.py', 128),
    ('htc/htc-without-semantic_r50_fpn_1x_coco.py', 128),
    ('scnet/scnet_r50_fpn_1x_coco.py', 128),
    ('sabl/sabl-faster-rcnn_r50_fpn_1x_coco.py', 128),
    ('sabl/sabl-cascade-rcnn_r50_fpn_1x_coco.py', 128),
    ('ms_rcnn/ms-rcnn_r50_fpn_1x_coco.py', 128),
    ('grid_rcnn/grid-rcnn_r50_fpn_gn-head_2x_coco.py', 128),
    ('double_heads/dh-faster-rcnn_r50_fpn_1x_coco.py', 128),
    ('dynamic_rcnn/dynamic-rcnn_r50_fpn_1x_coco.py', 128),
    ('libra_rcnn/libra-faster-rcnn_r50_fpn_1x_coco.py', 128),
    ('pisa/faster-rcnn_r50_fpn_pisa_1x_coco.py', 128),
    ('point_rend/point-rend_r50-caffe_fpn_ms-1x_coco.py', 128),
    ('panoptic_fpn/panoptic-fpn_r50_fpn_1x_coco.py', 128),
    ('tridentnet/tridentnet_r50-caffe_1x_coco.py', 128),
    ('retinanet/retinanet_r50_fpn_1x_coco.py', 128),
    ('fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py', 128),
    ('fcos/fcos_r50-caffe_fpn_gn-head-center-normbbox-centeronreg-giou_1x_coco.py', 128),
    ('atss/atss_r50_fpn_1x_coco.py', 128),
    ('gfl/gfl_r50_fpn_1x_coco.py', 128),
    ('paa/paa_r50_fpn_1x_coco.py', 320),
    ('autoassign/autoassign_r50-caffe_fpn_1x_coco.py', 128),
    ('vfnet/vfnet_r50_fpn_1x_coco.py', 128),
    ('fsaf/fsaf_r50_fpn_1x_coco.py', 128),
    ('free_anchor/freeanchor_r50_fpn_1x_coco.py', 128),
    ('ddod/ddod_r50_fpn_1x_coco.py', 320),
    ('foveabox/fovea_r50_fpn_4xb4-1x_coco.py', 128),
    ('ghm/retinanet_r50_fpn_ghm-1x_coco.py', 128),
    ('reppoints/reppoints-moment_r50_fpn_1x_coco.py', 128),
    ('centernet/centernet-update_r50-caffe_fpn_ms-1x_coco.py', 128),
    ('tood/tood_r50_fpn_1x_coco.py', 128),
    ('yolox/yolox_s_8xb8-300e_coco.py', 128),
    ('rtmdet/rtmdet_tiny_8xb32-300e_coco.py', 128),  # boxes only: the batch has no masks
    ('rtmdet/rtmdet-ins_tiny_8xb32-300e_coco.py', 128),
    ('condinst/condinst_r50_fpn_ms-poly-90k_coco_instance.py', 128),
    ('yolact/yolact_r50_1xb8-55e_coco.py', 128),
    ('sparse_rcnn/sparse-rcnn_r50_fpn_1x_coco.py', 128),
    ('queryinst/queryinst_r50_fpn_1x_coco.py', 128),
    ('detr/detr_r50_8xb2-150e_coco.py', 128),
    ('conditional_detr/conditional-detr_r50_8xb2-50e_coco.py', 128),
    ('dab_detr/dab-detr_r50_8xb2-50e_coco.py', 128),
    ('deformable_detr/deformable-detr_r50_16xb2-50e_coco.py', 128),
    ('deformable_detr/deformable-detr-refine-twostage_r50_16xb2-50e_coco.py', 128),
    ('dino/dino-4scale_r50_8xb2-12e_coco.py', 256),
    ('ddq/ddq-detr-4scale_r50_8xb2-12e_coco.py', 256),
    ('sabl/sabl-retinanet_r50_fpn_1x_coco.py', 128),
    ('guided_anchoring/ga-retinanet_r50_fpn_1x_coco.py', 128),
    ('ssd/ssd300_coco.py', 320),
    ('centernet/centernet_r18_8xb16-crop512-140e_coco.py', 128),
    ('yolo/yolov3_d53_8xb8-320-273e_coco.py', 128),
    ('solov2/solov2_r50_fpn_1x_coco.py', 128),
    ('mask2former/mask2former_r50_8xb2-lsj-50e_coco.py', 128),
]

SEG_CONFIGS = [
    ('deeplabv3/deeplabv3_r50-d8_4xb4-20k_voc12aug-512x512.py', 64),
    ('deeplabv3plus/deeplabv3plus_r18-d8_4xb2-80k_cityscapes-512x1024.py', 64),
    ('pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py', 64),
    ('fcn/fcn_r18-d8_4xb2-80k_cityscapes-512x1024.py', 64),
    ('upernet/upernet_r18_4xb2-40k_cityscapes-512x1024.py', 64),
    ('segformer/segformer_mit-b0_8xb2-160k_ade20k-512x512.py', 64),
    ('ocrnet/ocrnet_hr18s_4xb2-40k_cityscapes-512x1024.py', 64),
    ('ann/ann_r50-d8_4xb2-40k_cityscapes-512x1024.py', 64),
    ('apcnet/apcnet_r50-d8_4xb2-40k_cityscapes-512x1024.py', 64),
    ('ccnet/ccnet_r50-d8_4xb2-40k_cityscapes-512x1024.py', 64),
    ('danet/danet_r50-d8_4xb2-40k_cityscapes-512x1024.py', 64),
    ('dmnet/dmnet_r50-d8_4xb2-40k_cityscapes-512x1024.py', 64),
    ('dnlnet/dnl_r50-d8_4xb2-40k_cityscapes-512x1024.py', 64),
    ('emanet/emanet_r50-d8_4xb2-80k_cityscapes-512x1024.py', 64),
    ('encnet/encnet_r50-d8_4xb2-40k_cityscapes-512x1024.py', 64),
    ('gcnet/gcnet_r50-d8_4xb2-40k_cityscapes-512x1024.py', 64),
    ('isanet/isanet_r50-d8_4xb2-40k_cityscapes-512x1024.py', 64),
    ('nonlocal_net/nonlocal_r50-d8_4xb2-40k_cityscapes-512x1024.py', 64),
    ('psanet/psanet_r50-d8_4xb2-40k_cityscapes-512x1024.py', 64),
    ('point_rend/pointrend_r50_4xb2-80k_cityscapes-512x1024.py', 64),
    ('fastscnn/fast_scnn_8xb4-160k_cityscapes-512x1024.py', 64),
    ('bisenetv1/bisenetv1_r18-d32_4xb4-160k_cityscapes-1024x1024.py', 64),
    ('bisenetv2/bisenetv2_fcn_4xb4-160k_cityscapes-1024x1024.py', 64),
    ('stdc/stdc1_4xb12-80k_cityscapes-512x1024.py', 64),
    ('icnet/icnet_r18-d8_4xb2-80k_cityscapes-832x832.py', 64),
    ('erfnet/erfnet_fcn_4xb4-160k_cityscapes-512x1024.py', 64),
    ('hrnet/fcn_hr18s_4xb2-40k_cityscapes-512x1024.py', 64),
    ('mobilenet_v2/mobilenet-v2-d8_deeplabv3_4xb2-80k_cityscapes-512x1024.py', 64),
    ('segnext/segnext_mscan-t_1xb16-adamw-160k_ade20k-512x512.py', 64),
    ('poolformer/fpn_poolformer_s12_8xb4-40k_ade20k-512x512.py', 64),
    ('twins/twins_pcpvt-s_fpn_fpnhead_8xb4-80k_ade20k-512x512.py', 64),
    ('swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py', 64),
    ('convnext/convnext-tiny_upernet_8xb2-amp-160k_ade20k-512x512.py', 64),
    ('segmenter/segmenter_vit-t_mask_8xb1-160k_ade20k-512x512.py', 64),
    ('setr/setr_vit-l_naive_8xb2-160k_ade20k-512x512.py', 64),
    ('dpt/dpt_vit-b16_8xb2-160k_ade20k-512x512.py', 64),
    ('knet/knet-s3_r50-d8_fcn_8xb2-adamw-80k_ade20k-512x512.py', 64),
    ('ddrnet/ddrnet_23-slim_in1k-pre_2xb6-120k_cityscapes-1024x1024.py', 64),
    ('pidnet/pidnet-s_2xb6-120k_1024x1024-cityscapes.py', 64),
    ('maskformer/maskformer_r50-d32_8xb2-160k_ade20k-512x512.py', 64),
    ('mask2former/mask2former_r50_8xb2-160k_ade20k-512x512.py', 64),
]


def ips_block(task: str) -> dict:
    """The project config's IPS block (between its markers) for ``task``, as a dict."""
    with open(osp.join(REPO, 'configs', BLOCK_SOURCE[task])) as file:
        text = file.read()
    marker = '# ---------------------------------------------------------------- '
    block = text.split(marker + 'IPS block')[1].split(marker + 'end of IPS block')[0]
    namespace: dict = {}
    exec(block, namespace)
    return {key: value for key, value in namespace.items() if not key.startswith('__')}


def ips_config(cfg, task: str):
    """``cfg`` with the IPS block merged, the base's hooks and batch augments kept, ``swap_prob=1``."""
    block = ips_block(task)
    hooks = list(cfg.get('custom_hooks') or []) + block.pop('custom_hooks')
    augments = block['model']['data_preprocessor'].pop('batch_augments')
    base_augments = list(cfg.model.get('data_preprocessor', {}).get('batch_augments') or [])
    cfg.merge_from_dict(block)
    cfg.custom_hooks = hooks
    cfg.model.data_preprocessor.batch_augments = base_augments + [dict(augments[-1], swap_prob=1.0)]
    return cfg


def without_pretrained(node):
    """Drop every ``pretrained`` path and ``init_cfg=dict(type='Pretrained')`` in a model config."""
    if isinstance(node, dict):
        if 'pretrained' in node:
            node['pretrained'] = None
        init_cfg = node.get('init_cfg')
        if isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained':
            node['init_cfg'] = None
        for value in node.values():
            without_pretrained(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            without_pretrained(value)


def _num_classes(model, default: int = 80) -> int:
    for name in ('roi_head', 'bbox_head', 'decode_head', 'mask_head', 'panoptic_head'):
        head = getattr(model, name, None)
        if isinstance(head, torch.nn.ModuleList):
            head = head[-1]
        for part in (head, getattr(head, 'bbox_head', None)):
            if isinstance(part, torch.nn.ModuleList):
                part = part[-1]
            if isinstance(getattr(part, 'num_classes', None), int):
                return part.num_classes
    return default


def pipeline_annotations(cfg) -> Tuple[bool, bool]:
    """Whether the training pipeline loads instance masks and a semantic map
    (``LoadAnnotations(with_mask=..., with_seg=...)``, ``LoadPanopticAnnotations``): a box-only
    detector's batch has neither (RTMDet's assigner reads masks as tensors where there are any)."""
    from ipswap_mm.engine.config_walk import leaf_datasets
    with_mask = with_seg = False
    for leaf in leaf_datasets(cfg.train_dataloader.dataset):
        for step in leaf.get('pipeline', []):
            if step.get('type') == 'LoadPanopticAnnotations':
                with_mask |= step.get('with_mask', True)
                with_seg |= step.get('with_seg', True)
            elif step.get('type') == 'LoadAnnotations':
                with_mask |= step.get('with_mask', False)
                with_seg |= step.get('with_seg', False)
    return with_mask, with_seg


def det_batch(size: int, num_classes: int, batch: int = 4, seed: int = 0, with_mask: bool = True,
              with_seg: bool = True) -> dict:
    """``batch`` images as ``PackDetInputs`` makes them, pairs sharing class 0: boxes, empty
    ignored instances and, if asked for, bitmap masks (the boxes filled) and a semantic map."""
    from mmdet.structures import DetDataSample
    from mmdet.structures.bbox import HorizontalBoxes
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData, PixelData

    rng = np.random.default_rng(seed)
    inputs, samples = [], []
    for _ in range(batch):
        count = int(rng.integers(2, 5))
        corner = rng.integers(0, size // 2, (count, 2))
        extent = rng.integers(size // 8, size // 2, (count, 2))
        boxes = np.concatenate([corner, np.minimum(corner + extent, size)], 1).astype(np.float32)
        labels = np.concatenate([[0], rng.integers(0, min(num_classes, 5), count - 1)])
        masks = np.zeros((count, size, size), np.uint8)
        semantic = np.full((1, size, size), 255, np.int64)
        for mask, (x1, y1, x2, y2), label in zip(masks, boxes.astype(int), labels):
            mask[y1:y2, x1:x2] = 1
            semantic[0, y1:y2, x1:x2] = label
        sample = DetDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size), pad_shape=(size, size),
                                             scale_factor=(1.0, 1.0), batch_input_shape=(size, size)))
        sample.gt_instances = InstanceData(bboxes=HorizontalBoxes(torch.from_numpy(boxes)),
                                           labels=torch.from_numpy(labels).long())
        sample.ignored_instances = InstanceData(bboxes=HorizontalBoxes(torch.zeros(0, 4)),
                                                labels=torch.zeros(0, dtype=torch.long))
        if with_mask:
            sample.gt_instances.masks = BitmapMasks(masks, size, size)
            sample.ignored_instances.masks = BitmapMasks(np.zeros((0, size, size), np.uint8), size, size)
        if with_seg:
            sample.gt_sem_seg = PixelData(sem_seg=torch.from_numpy(semantic))
        samples.append(sample)
        inputs.append(torch.from_numpy(rng.integers(0, 256, (3, size, size))).to(torch.uint8))
    return dict(inputs=inputs, data_samples=samples)


def seg_batch(size: int, num_classes: int, batch: int = 4, seed: int = 0, ignored: bool = True,
              edge_width: Optional[int] = None) -> dict:
    """``batch`` images as ``PackSegInputs`` makes them, every image holding class 1 (the left
    quarter) and random classes elsewhere, the top eighth at the ignore index 255 when ``ignored``,
    with the edge map of ``GenerateEdge(edge_width)`` if given (PIDNet's pipeline)."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    rng = np.random.default_rng(seed)
    inputs, samples = [], []
    for _ in range(batch):
        labels = rng.integers(0, num_classes, (1, size, size))
        labels[:, :, : size // 4] = 1 % num_classes
        if ignored:
            labels[:, : size // 8] = 255
        sample = SegDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size), pad_shape=(size, size)))
        sample.gt_sem_seg = PixelData(data=torch.from_numpy(labels).long())
        if edge_width is not None:
            edges = label_edges(torch.from_numpy(labels), edge_width)
            sample.gt_edge_map = PixelData(data=edges.long())
        samples.append(sample)
        inputs.append(torch.from_numpy(rng.integers(0, 256, (3, size, size))).to(torch.uint8))
    return dict(inputs=inputs, data_samples=samples)


def pipeline_edge_width(cfg, model: Optional[torch.nn.Module]) -> Optional[int]:
    """The training pipeline's ``GenerateEdge`` width (PIDNet), ``None`` without one; given to
    ``model``'s swap, if a model is given, as ``IPSDistillHook`` gives it from the built dataset."""
    from types import SimpleNamespace

    from mmcv.transforms import Compose

    from ipswap_mm.engine.config_walk import leaf_datasets, pipeline_transforms
    from ipswap_mm.engine.setup_checks import follow_generate_edge
    pipelines = SimpleNamespace(datasets=[SimpleNamespace(pipeline=Compose(leaf.get('pipeline', [])))
                                          for leaf in leaf_datasets(cfg.train_dataloader.dataset)])
    if model is not None:
        follow_generate_edge(model, pipelines)
    widths = [t.edge_width for t in pipeline_transforms(pipelines) if type(t).__name__ == 'GenerateEdge']
    return widths[0] if widths else None


def build_random_model(model_cfg, task: str, size: int) -> torch.nn.Module:
    """The model of ``model_cfg`` with random weights, initialised as the runner does, SyncBN as
    BN; segmentation crops of ``size``. Call under the task's default scope."""
    from mmengine.config import ConfigDict
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import MODELS

    model_cfg = ConfigDict(model_cfg.to_dict())
    without_pretrained(model_cfg)
    if task == 'seg':
        model_cfg['data_preprocessor']['size'] = (size, size)
    model = revert_sync_batchnorm(MODELS.build(model_cfg))
    model.init_weights()
    for module in model.modules():  # only a pretrained checkpoint fills TridentNet's convs
        if type(module).__name__ == 'TridentConv':
            torch.nn.init.kaiming_normal_(module.weight, mode='fan_out', nonlinearity='relu')
    return model


def train_one_step(config: str, task: str, size: int, with_ips: bool = True, seed: int = 0,
                   ignored: bool = True) -> dict:
    """One training step of stock ``config`` (with the IPS block when ``with_ips``); a result row.
    ``ignored``: segmentation label maps with pixels at the ignore index."""
    from mmengine.hub import get_config
    from mmengine.logging import MessageHub
    from mmengine.optim import OptimWrapper
    from mmengine.registry import DefaultScope

    import ipswap_mm  # noqa: F401  (registers the project's modules)
    from ipswap_mm.engine.distill_hook import ips_hook_of
    from ipswap_mm.engine.setup_checks import check_swap_configured

    row: dict = dict(config=config, size=size, ips=with_ips)
    for key in ('epoch', 'iter'):  # what a runner tells the heads (TOOD) and batch augments (YOLOX)
        MessageHub.get_current_instance().update_info(key, 0)
    start = time.perf_counter()
    torch.manual_seed(seed)  # the model's random weights: each row is the same whatever ran before it
    try:
        cfg = get_config(f'{SCOPE[task]}::{config}')
        if with_ips:
            cfg = ips_config(cfg, task)
        with DefaultScope.overwrite_default_scope(SCOPE[task]):
            model = build_random_model(cfg.model, task, size)
            keys = set(model.state_dict())
            hook = None
            if with_ips:
                check_swap_configured(model)
                hook = ips_hook_of(cfg.custom_hooks)
                hook.attach(model)
            if task == 'det':
                with_mask, with_seg = pipeline_annotations(cfg)
                batch = det_batch(size, _num_classes(model), seed=seed, with_mask=with_mask, with_seg=with_seg)
            else:
                edge_width = pipeline_edge_width(cfg, model if with_ips else None)
                batch = seg_batch(size, _num_classes(model), seed=seed, ignored=ignored, edge_width=edge_width)
            model.train()
            optimizer = OptimWrapper(torch.optim.SGD(model.parameters(), lr=1e-4))
            log_vars = model.train_step(batch, optimizer)
            if hook is not None:
                hook.detach()
            changed = keys ^ set(model.state_dict())
        kl = log_vars.get('loss_ips_kl')
        if not torch.isfinite(torch.as_tensor(log_vars['loss'])):
            row.update(status='fails', message=f"the training loss is not finite: {log_vars['loss']}")
        elif changed:
            row.update(status='fails', message=f'state_dict keys changed: {sorted(changed)[:5]}')
        elif with_ips and (kl is None or not torch.isfinite(torch.as_tensor(kl))):
            row.update(status='fails', message=f'loss_ips_kl not logged or not finite: {kl}')
        elif with_ips and not kl.requires_grad:  # computed where it cannot train (OHEM's sampler, no_grad)
            row.update(status='fails', message='loss_ips_kl has no gradient: it trains nothing')
        else:
            row.update(status='trains', loss=float(log_vars['loss'].detach()),
                       loss_ips_kl=None if kl is None else float(kl.detach()))
    except TypeError as error:
        rejected = 'IPSDistillHook' in str(error) or 'ipswap_mm' in str(error)
        row.update(status='rejected' if rejected else 'fails', message=_last_line(error))
    except Exception as error:  # a config that fails is a result of this tool, not its end
        row.update(status='fails', message=_last_line(error), where=_where(error))
    row['seconds'] = round(time.perf_counter() - start, 1)
    return row


def _last_line(error: BaseException) -> str:
    return f'{type(error).__name__}: {str(error).strip().splitlines()[-1] if str(error).strip() else ""}'


def _where(error: BaseException) -> str:
    frame = traceback.extract_tb(error.__traceback__)[-1]
    return f'{osp.relpath(frame.filename, osp.dirname(osp.dirname(torch.__file__)))}:{frame.lineno}'


def markdown(rows: list) -> str:
    lines = ['| config | size | status | loss_ips_kl / message | s |', '| --- | ---: | --- | --- | ---: |']
    for row in rows:
        detail = f"{row['loss_ips_kl']:.4g}" if row.get('loss_ips_kl') is not None else row.get('message', '')
        lines.append(f"| {row['config']} | {row['size']} | {row['status']}{'' if row['ips'] else ' (baseline)'} "
                     f"| {detail} | {row['seconds']} |")
    return '\n'.join(lines)


def _child(send, *args, **kwargs) -> None:
    MMLogger.get_instance('check_stock_configs', log_level='WARNING')  # quiet init_weights
    send.send(train_one_step(*args, **kwargs))


def in_child_process(config: str, task: str, size: int, with_ips: bool, ignored: bool = True) -> dict:
    """:func:`train_one_step` in a process of its own: every model's memory is returned when it
    ends, and a process the kernel kills (out of memory) is a row, not the end of the run.

    The processes fork from a fork server that has imported the libraries but run no torch
    operator (forking a process whose OpenMP threads have run can deadlock the child)."""
    context = multiprocessing.get_context('forkserver')
    context.set_forkserver_preload(['torch', 'mmengine.runner', f'{SCOPE[task]}.models', 'ipswap_mm'])
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(send, config, task, size, with_ips), kwargs=dict(ignored=ignored))
    process.start()
    send.close()
    try:
        row = receive.recv()
    except EOFError:
        row = dict(config=config, size=size, ips=with_ips, status='fails', seconds=None,
                   message='the process ended without a result')
    process.join()
    if process.exitcode:
        row['message'] = f"{row.get('message', '')} (exit code {process.exitcode})".strip()
    return row


def main(argv: Optional[list] = None) -> list:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--task', choices=('det', 'seg'), required=True)
    parser.add_argument('--configs', nargs='+', help='stock config paths relative to the package\'s configs '
                        '(default: the lists in this file)')
    parser.add_argument('--size', type=positive_int, help='image side for every config (default: per config)')
    parser.add_argument('--baseline', action='store_true', help='also run each config that does not train '
                        'with IPS without the block')
    parser.add_argument('--no-ignore', action='store_true', help='segmentation label maps without pixels at '
                        'the ignore index (PIDNet\'s class-weighted loss fails on them in MMSegmentation 1.2.2)')
    parser.add_argument('--out', help='write the rows as JSON here, after every config (and a Markdown table '
                        'next to it, .md)')
    args = parser.parse_args(argv)
    if args.out and not args.out.endswith('.json'):
        parser.error(f'--out {args.out}: name a .json file (the Markdown table goes next to it)')
    defaults = dict(DET_CONFIGS if args.task == 'det' else SEG_CONFIGS)
    configs = args.configs or list(defaults)
    rows = []
    for config in configs:
        size = args.size or defaults.get(config, 128 if args.task == 'det' else 64)
        row = in_child_process(config, args.task, size, with_ips=True, ignored=not args.no_ignore)
        rows.append(row)
        print(markdown([row]).splitlines()[-1], flush=True)
        if args.baseline and row['status'] != 'trains':
            rows.append(in_child_process(config, args.task, size, with_ips=False, ignored=not args.no_ignore))
            print(markdown([rows[-1]]).splitlines()[-1], flush=True)
        if args.out:  # after every config: a run cut short keeps what it found
            write_rows(rows, args.out, args.task, argv)
    print(markdown(rows))
    return rows


def write_rows(rows: list, out: str, task: str, argv) -> None:
    """The rows as JSON in ``out`` and as a Markdown table beside it (``.md``)."""
    os.makedirs(osp.dirname(out) or '.', exist_ok=True)
    with open(out, 'w') as file:
        json.dump(dict(task=task, torch=torch.__version__, rows=rows), file, indent=1)
    with open(osp.splitext(out)[0] + '.md', 'w') as file:
        file.write(f'`python tools/check_stock_configs.py {" ".join(argv or sys.argv[1:])}`\n\n'
                   + markdown(rows) + '\n')


def failures_of_ours(rows: list) -> list:
    """Configs that fail with the block and train without it, or fail with no baseline run."""
    baseline = {row['config']: row['status'] for row in rows if not row['ips']}
    return [row['config'] for row in rows if row['ips'] and row['status'] == 'fails'
            and baseline.get(row['config'], 'trains') == 'trains']


if __name__ == '__main__':
    failed = failures_of_ours(main())
    if failed:
        sys.exit(f'{len(failed)} config(s) fail with the block: {", ".join(failed)}')
