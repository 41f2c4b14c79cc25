"""Test-only hook: records which images every rank trained on, batch by batch, and its losses."""
import json
import os.path as osp

from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class PairRecorderHook(Hook):
    """Appends ``{"iter", "epoch", "names": [image names of the batch in order], "losses": {name: value}}``
    to ``pairs_rank{R}.jsonl`` (this rank's own losses, before any averaging across ranks), and
    writes the sum of every parameter to ``checksum_rank{R}.json`` after training. ``epoch`` is
    the pair sampler's: under an iteration-based loop (the runner's epoch stays 0) it counts
    the epochs the sampler ran through (exact with ``num_workers=0``: nothing is prefetched)."""

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        names = [osp.splitext(osp.basename(sample.img_path))[0] for sample in data_batch['data_samples']]
        losses = {key: float(value) for key, value in (outputs or {}).items() if 'loss' in key}
        epoch = runner.train_dataloader.sampler.epoch_drawn
        with open(osp.join(runner.work_dir, f'pairs_rank{get_rank()}.jsonl'), 'a') as file:
            file.write(json.dumps(dict(iter=runner.iter, epoch=epoch, names=names, losses=losses)) + '\n')

    def after_train(self, runner) -> None:
        model = runner.model.module if hasattr(runner.model, 'module') else runner.model
        checksum = [float(p.detach().double().sum()) for p in model.parameters()]
        with open(osp.join(runner.work_dir, f'checksum_rank{get_rank()}.json'), 'w') as file:
            json.dump(checksum, file)
