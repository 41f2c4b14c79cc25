"""What the segmentation pair KL does to a segmentor that has learned the digits.

Run from the repository root after the warm-start command of the README:
    python docs/runs/seg_kl_diagnosis.py work_dirs/warm_start_init/runs/seg/baseline/seed0/iter_800.pth [WEIGHTING]

WEIGHTING: the pair KL's ``weighting``, ``elements`` (the default) or ``classes``.

Output on 2026-11-23 (commit ffa3c92, 2-core CPU, torch 2.13.0+cpu; the KL then weighted
every class the same, ``classes``; another machine's checkpoint):

    task (CE): gradient norm 0.792 per batch; cosine of consecutive batches -0.019
    pair KL: gradient norm 4.607 per batch; cosine of consecutive batches -0.032
    cosine(KL gradient, task gradient), same batch: +0.376
    a KL step on the logits raises the student view's own-class probability in 79% of (pair, class)
    terms (mean +0.00238); the teacher view's moves by 6.9e-05 on average
"""
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, 'tools')
import benchmark_accuracy as ba  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

import ipswap_mm  # noqa: E402,F401
from ipswap_mm.core.cell_counts import cell_class_counts  # noqa: E402
from ipswap_mm.core.pair_kl import class_shares, pair_kl_divergence  # noqa: E402
from ipswap_mm.engine import trusted_checkpoint_globals  # noqa: E402


def own_class_prob(logits, weights):
    """``(P, 2, K)`` mean probability of each class over its own elements, in each view; ``(P, K)`` shared."""
    shares, counts = class_shares(weights.double())
    means = torch.bmm(logits.double().softmax(1), shares).transpose(1, 2)  # (N, K, C)
    counts = counts[:, 0]
    return means.diagonal(dim1=1, dim2=2).unflatten(0, (-1, 2)), (counts.unflatten(0, (-1, 2)) > 0).all(1)


weighting = sys.argv[2] if len(sys.argv) > 2 else 'elements'
args = ba.parse_args(['--tasks', 'seg'])
roots = ba.prepare_data(args)
cfg = ba.build_config('seg', 'ips', roots['seg'], 0, 10, 5, 8, 64, 'work_dirs/seg_kl_diagnosis', {})
runner = Runner.from_cfg(cfg)
model = runner.model
with trusted_checkpoint_globals():
    model.load_state_dict(torch.load(sys.argv[1])['state_dict'])
model.train()
params = [p for p in model.parameters() if p.requires_grad]
batches = iter(runner.train_dataloader)
grads = {'task (CE)': [], 'pair KL': []}
student_up, student_change, teacher_change = [], [], []
for _ in range(12):
    data = model.data_preprocessor(next(batches), True)  # swapped pairs
    logits = model.decode_head.forward(model.extract_feat(data['inputs']))
    task = sum(v for k, v in model.decode_head.loss_by_feat(logits, data['data_samples']).items() if 'loss' in k)
    labels = torch.stack([s.gt_sem_seg.data[0] for s in data['data_samples']])
    weights = cell_class_counts(labels, logits.shape[-2:], 11)
    kl = pair_kl_divergence(logits.flatten(2), weights, 11, 4.0, weighting=weighting)
    for name, loss in (('task (CE)', task), ('pair KL', kl)):
        grads[name].append(torch.cat([g.flatten() for g in torch.autograd.grad(loss, params, retain_graph=True)]))
    # one small gradient step of the KL on the logits alone: whose own-class probability moves?
    flat = logits.detach().flatten(2).requires_grad_(True)
    grad, = torch.autograd.grad(pair_kl_divergence(flat, weights, 11, 4.0, weighting=weighting), flat)

    before, shared = own_class_prob(flat.detach(), weights)
    after, _ = own_class_prob(flat.detach() - 0.5 * grad / grad.norm(), weights)
    student = (before[:, 0] >= before[:, 1]).long()[:, None]  # the less confident view of each class
    change = after - before
    student_change.append(change.gather(1, student)[:, 0][shared])
    teacher_change.append(change.gather(1, 1 - student)[:, 0][shared])
stacked = {name: torch.stack(g) for name, g in grads.items()}
for name, g in stacked.items():
    print(f'{name}: gradient norm {g.norm(dim=1).mean():.3f} per batch; cosine of consecutive batches '
          f'{F.cosine_similarity(g[:-1], g[1:]).mean():+.3f}')
task_g, kl_g = stacked['task (CE)'], stacked['pair KL']
print(f'cosine(KL gradient, task gradient), same batch: {F.cosine_similarity(task_g, kl_g).mean():+.3f}')
student_change, teacher_change = torch.cat(student_change), torch.cat(teacher_change)
print(f'a KL step on the logits raises the student view\'s own-class probability in '
      f'{(student_change > 0).float().mean():.0%} of (pair, class) terms (mean {student_change.mean():+.5f}); '
      f'the teacher view\'s moves by {teacher_change.abs().mean():.1e} on average')
