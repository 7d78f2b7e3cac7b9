"""The paper's image-level S-measure (F-beta) regularizer, faithfully.

Ravi et al. (AAAI 2020) regularize the F1 score of one binary label per
image (by default the "size" label of segreg.datasets.transforms.SizeLabel)
predicted by an auxiliary linear head on the flattened decoder logits. With
``f_i`` that head's score of training image ``i``, ``S+``/``S-`` the positive
/ negative training images (``n = |S+|``) and ``N`` the dataset size, the
partially dualized Lagrangian (paper eq. 4-5; docs/regularizer_derivation.md,
sections 2 and 4) is::

    L = b^2 n eps + sum_{S-} max(0, eps + w f_j) + mu (sum_{S+} tau_i - 1)
        + sum_{S+} lambda_i (tau_i - w f_i)

with primal variables ``tau`` (one per image), ``eps`` and ``w`` (scalars)
trained by the runner's optimizer together with the network, and dual
variables ``lambda >= 0`` (one per image) and ``mu`` (scalar) updated by
:class:`segreg.engine.hooks.DualAscentHook` every ``interval`` iterations
after projecting ``(tau_{S+}, eps)`` onto ``C = {tau_i <= eps, eps >= 0}``.
The loss of a batch is the unbiased minibatch estimate of ``L / N``::

    (b^2 n / N) eps - mu / N
      + mean_{i in batch} [ [i in S-] max(0, eps + w f_i)
                            + [i in S+] (mu tau_i + lambda_i (tau_i - w f_i)) ]

Differences from the authors' code (lib/trainers/functional.py and the F1
trainers of abhay-venkatesh/f1-cv): ``lambda`` is clipped at 0, ``mu``'s
gradient sums ``tau`` over the positives only, the projection is the exact
Pi_C of segreg.ops, and the regularized and plain runs share one optimizer.

How the per-image labels and sample indices arrive: mmseg's decode heads call
their losses with ``(seg_logits, seg_label, weight, ignore_index)`` only, so
``DualAscentHook.before_train_iter`` hands the batch's data samples to every
``SMeasureLoss`` of the model (:meth:`SMeasureLoss.set_batch_samples`); a
caller can also pass ``data_samples=`` to ``forward``. The samples must carry
``metainfo['sample_idx']`` (mmengine datasets set it; pack it with
``PackSegInputsWithMeta``) and, with ``label_source='meta'``,
``metainfo['size_label']`` (the ``SizeLabel`` transform).
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmseg.registry import MODELS
from torch import Tensor, nn

from segreg.ops import project_tau_eps, projected_dual_step
from segreg.utils.dist import all_gather_varlen, world_size

from .pixel_metric_loss import finite_or_raise

__all__ = ['SMeasureLoss']


class _Primal(nn.Module):
    """The primal LP variables, one parameter group (``smeasure_lp``)."""

    def __init__(self, num_samples: int, init_w: float) -> None:
        super().__init__()
        self.tau = nn.Parameter(torch.zeros(num_samples))
        self.eps = nn.Parameter(torch.zeros(()))
        self.w = nn.Parameter(torch.full((), float(init_w)))


@MODELS.register_module()
class SMeasureLoss(nn.Module):
    """Image-level F-beta regularizer of Ravi et al. (AAAI 2020).

    Put it in a decode head's ``loss_decode`` list beside CrossEntropyLoss
    and add ``DualAscentHook`` to ``custom_hooks`` (it delivers the batch's
    data samples and performs the projection and dual ascent). Give the
    primal variables (parameter names containing ``smeasure_lp``) their own
    learning rate and no weight decay through ``paramwise_cfg``.

    Args:
        num_classes (int): Channels of the logits (the decoder's classes).
        num_samples (int): Length of the training dataset (``tau`` and
            ``lambda`` have one entry per ``sample_idx``).
        pool_size (tuple[int, int]): The logits are average-pooled to this
            size before the linear score head, so the head's input size is
            fixed (the paper's head saw 92 x 27 x 40 decoder logits).
        num_positives (int, optional): ``n = |S+|``. None: estimated as
            ``N *`` the positive fraction among the images seen so far.
        beta (float): F-beta parameter (paper: 1).
        label_source (str): ``'meta'``: ``data_sample.metainfo['size_label']``
            (SizeLabel transform, the paper's setting); ``'mask'``: the size
            rule (``size_rule`` kwargs of
            ``segreg.datasets.transforms.compute_size_label``) applied to the
            label map the loss receives (after cropping).
        size_rule (dict, optional): Keyword arguments of the size rule for
            ``label_source='mask'``.
        init_w (float): Initial ``w``. Default 1.
        sync (bool): Under torch.distributed, gather the batch's labels and
            scores so every rank keeps the same per-sample buffers.
        nonfinite (str): Non-finite logits: ``'error'`` (default) raises
            naming the loss and the count; ``'skip'`` returns a zero loss,
            records nothing and counts the batch in ``num_skipped``.
        loss_weight (float): The paper's alpha (1e-2 .. 1e-4). Default 1e-3.
        loss_name (str): Default ``'loss_smeasure'``.

    Shape:
        cls_score (B, C, H, W); label (B, H, W).
    """

    #: metainfo key of the binary size label (the ``SizeLabel`` transform)
    LABEL_KEY = 'size_label'

    def __init__(self,
                 num_classes: int,
                 num_samples: int,
                 pool_size: Sequence[int] = (24, 24),
                 num_positives: Optional[int] = None,
                 beta: float = 1.0,
                 label_source: str = 'meta',
                 size_rule: Optional[dict] = None,
                 init_w: float = 1.0,
                 sync: bool = True,
                 nonfinite: str = 'error',
                 loss_weight: float = 1e-3,
                 loss_name: str = 'loss_smeasure') -> None:
        super().__init__()
        if num_samples < 1:
            raise ValueError('num_samples must be the training set length')
        if label_source not in ('meta', 'mask'):
            raise ValueError("label_source must be 'meta' or 'mask'")
        if beta <= 0:
            raise ValueError('beta must be positive')
        if nonfinite not in ('error', 'skip'):
            raise ValueError("nonfinite must be 'error' or 'skip'")
        self.nonfinite = nonfinite
        self.num_skipped = 0
        self.num_classes = int(num_classes)
        self.num_samples = int(num_samples)
        self.pool_size = tuple(int(p) for p in pool_size)
        self.num_positives = num_positives
        self.beta = float(beta)
        self.label_source = label_source
        self.size_rule = dict(size_rule or {})
        self.sync = sync
        self.loss_weight = loss_weight
        self._loss_name = loss_name
        in_features = self.num_classes * self.pool_size[0] * self.pool_size[1]
        self.score_head = nn.Linear(in_features, 1)
        self.smeasure_lp = _Primal(self.num_samples, init_w)
        # dual variables and per-sample bookkeeping (all in the state_dict)
        self.register_buffer('lambda_', torch.zeros(self.num_samples))
        self.register_buffer('mu', torch.zeros(()))
        self.register_buffer(
            'sample_label', torch.full((self.num_samples, ), -1,
                                       dtype=torch.int8))
        self.register_buffer('sample_score', torch.zeros(self.num_samples))
        self.register_buffer('num_dual_steps', torch.zeros((),
                                                           dtype=torch.long))
        self._batch_samples = None

    # -- data delivery --------------------------------------------------------
    def set_batch_samples(self, data_samples) -> None:
        """Data samples of the coming forward (called by DualAscentHook)."""
        self._batch_samples = data_samples

    def _batch_meta(self, data_samples, label: Tensor,
                    ignore_index: int) -> Tuple[Tensor, Tensor]:
        B = label.shape[0]
        if data_samples is None:
            raise RuntimeError(
                'SMeasureLoss needs the batch\'s data samples (sample_idx and '
                'the per-image label): add dict(type="DualAscentHook") to '
                'custom_hooks, or pass data_samples= to forward')
        if len(data_samples) != B:
            raise RuntimeError(f'SMeasureLoss got {len(data_samples)} data '
                               f'samples for a batch of {B}')
        idx, lab = [], []
        for b, ds in enumerate(data_samples):
            meta = ds.metainfo if hasattr(ds, 'metainfo') else ds
            if 'sample_idx' not in meta:
                raise KeyError(
                    'data sample has no metainfo["sample_idx"]: use '
                    'PackSegInputsWithMeta (or PackSegInputs with '
                    'meta_keys including "sample_idx") in the train pipeline')
            idx.append(int(meta['sample_idx']))
            if self.label_source == 'meta':
                if self.LABEL_KEY not in meta:
                    raise KeyError(
                        f'data sample has no metainfo[{self.LABEL_KEY!r}]: '
                        'add SizeLabel after LoadAnnotations and pack it with '
                        'PackSegInputsWithMeta, or use label_source="mask"')
                lab.append(int(meta[self.LABEL_KEY]))
            else:
                from segreg.datasets.transforms import compute_size_label
                rule = dict(ignore_index=ignore_index)
                rule.update(self.size_rule)
                lab.append(compute_size_label(
                    label[b].detach().cpu().numpy(), **rule))
        idx_t = torch.as_tensor(idx, dtype=torch.long, device=label.device)
        lab_t = torch.as_tensor(lab, dtype=torch.long, device=label.device)
        if idx_t.numel() and (idx_t.min() < 0
                              or idx_t.max() >= self.num_samples):
            raise IndexError(
                f'sample_idx {int(idx_t.max())} out of range: SMeasureLoss '
                f'has num_samples={self.num_samples}; set it to the training '
                'set length')
        if not bool(((lab_t == 0) | (lab_t == 1)).all()):
            raise ValueError('per-image labels must be 0 or 1')
        return idx_t, lab_t

    # -- forward --------------------------------------------------------------
    def image_scores(self, cls_score: Tensor) -> Tensor:
        """The auxiliary head's score of every image, shape (B,)."""
        x = F.adaptive_avg_pool2d(cls_score.float(),
                                  self.pool_size).flatten(1)
        return self.score_head(x).squeeze(1)

    def estimated_num_positives(self) -> Tensor:
        """``n``: ``num_positives`` or ``N *`` the seen positive fraction."""
        if self.num_positives is not None:
            return self.mu.new_tensor(float(self.num_positives))
        seen = (self.sample_label >= 0).sum().clamp(min=1)
        pos = (self.sample_label == 1).sum()
        return (pos.float() / seen.float() * self.num_samples).clamp(min=1.0)

    def forward(self,
                cls_score: Tensor,
                label: Tensor,
                weight: Optional[Tensor] = None,
                ignore_index: int = 255,
                data_samples=None,
                **kwargs) -> Tensor:
        """Minibatch estimate of ``L / N`` (module docstring).

        Args:
            cls_score (Tensor): Logits (B, C, H, W).
            label (Tensor): (B, H, W); used only by ``label_source='mask'``.
            weight: Unused (image-level loss); accepted for the contract.
            ignore_index (int): For the size rule of ``label_source='mask'``.
            data_samples (list, optional): The batch's SegDataSamples; by
                default those handed over by :meth:`set_batch_samples`.
        """
        if not finite_or_raise(f'SMeasureLoss ({self.loss_name})', cls_score,
                               self.nonfinite):
            self.num_skipped += 1  # nothing recorded: no state changes
            return sum(p.sum() for p in self.parameters()) * 0.0 + \
                cls_score.nan_to_num(0.0, 0.0, 0.0).sum() * 0.0
        samples = data_samples if data_samples is not None \
            else self._batch_samples
        idx, y = self._batch_meta(samples, label, ignore_index)
        with torch.autocast(device_type=cls_score.device.type, enabled=False):
            f = self.image_scores(cls_score)
            self._record(idx, y, f.detach())
            lp = self.smeasure_lp
            tau_b = lp.tau[idx]
            lam_b = self.lambda_[idx]
            yf = y.float()
            wf = lp.w * f
            neg = F.relu(lp.eps + wf) * (1.0 - yf)
            pos = (self.mu * tau_b + lam_b * (tau_b - wf)) * yf
            n = self.estimated_num_positives()
            N = float(self.num_samples)
            loss = (self.beta**2 * n / N) * lp.eps - self.mu / N + (
                neg + pos).mean()
        return self.loss_weight * loss

    @torch.no_grad()
    def _record(self, idx: Tensor, y: Tensor, f: Tensor) -> None:
        """Remember each sample's label and latest raw score (all ranks)."""
        if self.sync and world_size() > 1:
            f, idx, y = all_gather_varlen(f.double(), idx, y)
        self.sample_label[idx] = y.to(self.sample_label.dtype)
        self.sample_score[idx] = f.to(self.sample_score.dtype)

    # -- called by DualAscentHook ---------------------------------------------
    @torch.no_grad()
    def clamp_eps(self) -> None:
        """Keep ``eps >= 0`` between projections (as the authors' code)."""
        self.smeasure_lp.eps.clamp_(min=0.0)

    @torch.no_grad()
    def dual_step(self, eta_lambda: float = 1e-3,
                  eta_mu: float = 1e-5) -> Dict[str, float]:
        """Project ``(tau_{S+}, eps)`` onto C, then one dual ascent step.

        ``lambda_i <- max(0, lambda_i + eta_lambda (tau_i - w f_i))`` for the
        known positives (``f_i`` their latest score) and
        ``mu <- mu + eta_mu (sum_{S+} tau_i - 1)``.

        Returns:
            dict: The constraint slacks after the step (for logging).
        """
        lp = self.smeasure_lp
        pos = self.sample_label == 1
        if bool(pos.any()):
            tau_p, eps = project_tau_eps(lp.tau[pos].float(), lp.eps.float())
            lp.tau[pos] = tau_p.to(lp.tau.dtype)
            lp.eps.copy_(eps.reshape(()))
            slack = lp.tau[pos] - lp.w * self.sample_score[pos]
            self.lambda_[pos] = projected_dual_step(self.lambda_[pos], slack,
                                                    eta_lambda)
            sum_tau = lp.tau[pos].sum()
        else:
            lp.eps.clamp_(min=0.0)
            slack = lp.tau.new_zeros(0)
            sum_tau = lp.tau.new_zeros(())
        # mu: the dual of an equality constraint, not clipped
        self.mu.copy_(projected_dual_step(self.mu, sum_tau - 1.0, eta_mu,
                                          lower=None))
        self.num_dual_steps.add_(1)
        return self.dual_stats()

    @torch.no_grad()
    def dual_stats(self) -> Dict[str, float]:
        """Scalars for the log: duals, primal scalars, constraint slacks."""
        lp = self.smeasure_lp
        pos = self.sample_label == 1
        out = dict(mu=float(self.mu), eps=float(lp.eps), w=float(lp.w),
                   num_seen=int((self.sample_label >= 0).sum()),
                   num_pos=int(pos.sum()))
        if bool(pos.any()):
            slack = lp.tau[pos] - lp.w * self.sample_score[pos]
            lam = self.lambda_[pos]
            out.update(
                sum_tau_minus_1=float(lp.tau[pos].sum() - 1.0),
                lambda_mean=float(lam.mean()), lambda_max=float(lam.max()),
                slack_mean=float(slack.mean()),
                slack_max=float(slack.max()),
                tau_over_eps=float((lp.tau[pos] - lp.eps).max()))
        return out

    @property
    def loss_name(self) -> str:
        return self._loss_name

    def extra_repr(self) -> str:
        return (f'num_classes={self.num_classes}, '
                f'num_samples={self.num_samples}, pool_size={self.pool_size}, '
                f'beta={self.beta}, label_source={self.label_source!r}, '
                f'loss_weight={self.loss_weight}')
