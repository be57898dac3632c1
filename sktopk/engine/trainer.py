"""The training loop shared by every estimator and by the batched search.

It trains a grid of independent members of leading shape ``lead = (G, Mg)``:
``G`` data groups, each with its own training/validation rows and data order
(seeded per group), and ``Mg`` members per group that share those rows but have
their own hyper-parameters (learning rate, C, k, delta), threshold lambda and
early-stopping state. A single estimator is ``lead = (1, 1)``.

The step is a few large tensor operations with no host synchronisation; the
host looks at the device only at evaluation points (once per epoch by
default) to record scores and decide which members stop.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..losses import get_aggregate, get_individual_loss
from ..losses._aggregate_defs import (
    _lightest,
    _units,
    ceil_count,
    weight_threshold,
)
from .hyper import Hyper, Task, check_task
from .members import compaction, take
from .objectives import individual_loss_gradient
from .optim import make_optimizer
from .scoring import forward_rows, score_rows
from .stopping import Archive, EarlyStopping

__all__ = [
    "TrainData",
    "TrainSpec",
    "TrainResult",
    "Resume",
    "train",
    "one_thread",
    "DivergenceError",
    "largest_training_loss",
    "plain_arithmetic",
]


class DivergenceError(FloatingPointError):
    """Training produced a non-finite loss."""


@dataclass
class TrainData:
    """Rows on the device, shared by all groups.

    ``X``, ``y`` and ``w`` hold every row once plus a final padding row
    (weight 0); ``train_idx[g]`` and ``val_idx[g]`` index the rows of group g.
    """

    X: Tensor
    y: Tensor
    w: Tensor
    train_idx: list[Tensor]
    val_idx: list[Tensor] | None = None

    @property
    def pad(self) -> int:
        return self.X.shape[0] - 1


@dataclass
class TrainSpec:
    """What to train and how (everything that is the same for all members)."""

    loss: str
    aggregate: str
    task: Task
    optimizer: str = "adagrad"
    optimizer_options: dict = field(default_factory=dict)  # e.g. betas, momentum
    batch_size: int = 16
    max_epochs: int = 200
    early_stopping: bool = False
    eval_every: int | None = None  # steps between evaluations; None: each epoch
    patience: int = 10  # evaluations without improvement before stopping
    tol: float = 1e-4
    smoothing: str = "srelu"
    loss_params: dict = field(default_factory=dict)
    verbose: int = 0
    compact: bool = True  # drop finished members from the batch
    # Regression: the validation score is minus the mean squared error, or
    # of the absolute error with "absolute" (what a robust fit stops on).
    validation_error: str = "squared"

    def __post_init__(self) -> None:
        check_task(self.task)
        if self.validation_error not in ("squared", "absolute"):
            raise ValueError(
                "validation_error must be 'squared' or 'absolute'; got "
                f"{self.validation_error!r}"
            )


@dataclass
class TrainResult:
    lam: Tensor
    n_epochs: Tensor  # (G, Mg) epochs run by each member
    best_step: Tensor  # (G, Mg) step whose weights are kept
    loss_curve: list[Tensor]  # per epoch, (G, Mg) mean minibatch objective
    validation_scores: list[Tensor]  # per evaluation, (G, Mg)
    diverged: Tensor  # (G, Mg) bool
    converged: Tensor  # (G, Mg) bool: stopped before max_epochs
    steps_per_epoch: int = 0
    optimizer_state: dict | None = None  # single member: to resume from


@dataclass
class Resume:
    """Where a single member's previous training stopped (``partial_fit``)."""

    lam: float | None
    optimizer: dict


def train(
    model,
    data: TrainData,
    spec: TrainSpec,
    hyper: Hyper,
    seeds: list[int],
    resume: Resume | None = None,
) -> TrainResult:
    """Train all members of ``model`` in place; see the module docstring.

    ``hyper`` holds the members' hyper-parameters, each of shape ``lead``
    (the model's) on the data's device; ``seeds`` gives one int per group.
    """
    # The thread count is the caller's: torch.set_num_threads is process-wide,
    # and changing it here would race other threads of the process. (Steps on
    # a 16-row minibatch stay below torch's parallel grain size anyway.)
    with plain_arithmetic(data.X.device):
        _own_tensors(model)
        return _Loop(model, data, spec, hyper, seeds, resume).run()


@contextlib.contextmanager
def plain_arithmetic(device: torch.device):
    """Run the block as training needs, whatever context encloses it:
    gradients on, inference mode off and autocast off for ``device``'s type
    (its steps stay in the model's float32, as outside an enclosing
    ``torch.autocast``). The settings are per thread and restored on exit."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(torch.inference_mode(False))
        stack.enter_context(torch.enable_grad())
        if _has_autocast(device.type):
            stack.enter_context(torch.autocast(device.type, enabled=False))
        yield


def _has_autocast(device_type: str) -> bool:
    """Whether ``torch.autocast`` knows ``device_type`` (asked of torch
    where it can tell: ``is_autocast_available`` is recent)."""
    available = getattr(torch.amp, "is_autocast_available", None)
    if available is None:
        return device_type in ("cpu", "cuda")
    return bool(available(device_type))


def _own_tensors(model) -> None:
    """Make a model built under an enclosing ``torch.inference_mode`` (whose
    tensors training may not update in place outside it) trainable: its
    inference tensors become normal copies."""
    if hasattr(model, "own_tensors"):
        model.own_tensors()
    elif model.state[0].is_inference():
        model.rebind(model.state[0].clone())


@contextlib.contextmanager
def one_thread():
    """Run the block on one torch thread, then restore the thread count.

    For processes the caller owns (the reproduction's workers): the count is
    process-wide, so never use it inside a library call.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class _Loop:
    def __init__(self, model, data, spec, hyper, seeds, resume=None):
        self.model, self.data, self.spec, self.h = model, data, spec, hyper
        # One member's step size as a Python number (an argument of the update,
        # not one more tensor operation).
        self.lr_single = float(hyper.lr) if not hyper.lr.shape else None
        self.lead = hyper.lead
        # lead == (): one member, 2-D tensors and plain matrix products.
        self.single = self.lead == ()
        self.dev = data.X.device
        self.gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
        sizes = [len(t) for t in data.train_idx]
        self.S = math.ceil(max(sizes) / spec.batch_size)
        self.step_mask = _step_mask(sizes, spec.batch_size, self.S, self.dev)
        # Steps every group takes (the rest are masked for the shorter ones).
        self.full_steps = math.ceil(min(sizes) / spec.batch_size)
        # Minibatches per epoch of each group: the loss curve is their mean
        # objective (as scikit-learn's), which costs no extra pass over the data.
        steps = torch.tensor([math.ceil(n / spec.batch_size) for n in sizes])
        self.steps = steps[0] if self.single else steps.to(self.dev).unsqueeze(-1)
        # One member with unit weights needs neither weights nor padding.
        self.weighted = not (self.single and bool((data.w[:-1] == 1).all()))
        self.loss = get_individual_loss(spec.loss)
        self.aggregate = get_aggregate(spec.aggregate)
        self.uses_lam = self.aggregate.uses_threshold
        self.batch_weight = _batch_weighing(data, spec, sizes, self.S, self.single)
        lam0 = self._init_lambda() if self.uses_lam else None
        if resume is not None and self.uses_lam and resume.lam is not None:
            lam0 = torch.tensor(resume.lam, dtype=lam0.dtype, device=self.dev)
        l1 = hyper.l1_ratio / hyper.C
        self.lam = model.attach(lam0, (1.0 - hyper.l1_ratio) / hyper.C, l1)
        # The l1 part is a proximal step after each update (exact zeros).
        self.sparse = bool((hyper.l1_ratio > 0).any())
        self.opt = make_optimizer(
            spec.optimizer, model.state, self.lead, **spec.optimizer_options
        )
        if resume is not None:
            self.opt.load_state_dict(resume.optimizer)
        self.es = EarlyStopping(self.lead, self.dev, spec, model.state)
        self.archive = Archive(self.lead, self.dev, model.state)
        self.history: list[Tensor] = []

    # -- one step --------------------------------------------------------- #
    def step(self, batch: tuple[Tensor, Tensor, Tensor | None], s: int) -> Tensor:
        spec, h = self.spec, self.h
        Xb, yb, wb = batch
        f = self.model.forward(Xb)
        losses, dl_df = individual_loss_gradient(self.loss, f, yb, spec.loss_params)
        obj, g_l, g_lam = self.aggregate.loss_gradient(
            losses, wb, self.lam, h.kappa, h.delta, spec.smoothing
        )
        if self.batch_weight is not None:
            obj, g_l, g_lam = self._reweighed(obj, g_l, g_lam, wb, s)
        grads = self.model.backward(g_l.unsqueeze(-1) * dl_df, g_lam)
        # One member stops by leaving the loop; a batch freezes stopped members
        # (they never step again, so their optimizer state does not matter).
        lr = self.lr_single if self.single else h.lr * self.es.active
        # Groups with fewer minibatches skip the steps past their end: neither
        # their weights nor their optimizer state change, as in a single run.
        mask = None
        if self.step_mask is not None and s >= self.full_steps:
            mask = self.step_mask[s].unsqueeze(-1)
        with torch.no_grad():  # user modules' parameters require grad
            self.opt.step(grads, lr, mask)
            if self.sparse:
                t = lr if mask is None else lr * mask
                self.model.shrink(t, self.opt.scales())
            if self.uses_lam:
                self.lam.clamp_min_(0.0)
        if mask is not None:  # a skipped step adds nothing to the epoch's
            # objective (on its all-padding batch the maximum is -inf and the
            # dual forms give kappa * lam, not 0)
            obj = torch.where(mask > 0, obj, 0.0)
        return obj

    def _reweighed(self, obj, g_l, g_lam, wb: Tensor, s: int):
        """The aggregate's value and gradients with the minibatch's rows
        weighed against their group's mean weight, not their own total:
        ``sum_i w_i phi_i / (B mean(w))`` estimates the training rows'
        weighted mean without bias (each minibatch normalised by its own total
        cancels the weights of a one-row minibatch). The threshold term
        ``kappa lam`` of the dual forms is kept as it is."""
        mean_w, rows = self.batch_weight
        # Divided first: weights near float32's largest do not overflow a sum.
        if isinstance(mean_w, float):
            f = (wb / mean_w).sum(-1) / rows[s]
        else:  # groups of equal weights (mean inf) keep a factor of 1
            f = (wb / mean_w.unsqueeze(-1)).sum(-1) / rows[s]
            f = torch.where(torch.isinf(mean_w), 1.0, f)
        if not self.uses_lam:
            return obj * f, g_l * f.unsqueeze(-1), g_lam
        k_lam = self.h.kappa * self.lam.detach()
        kappa = self.h.kappa
        obj = f * (obj - k_lam) + k_lam
        return obj, g_l * f.unsqueeze(-1), f * (g_lam - kappa) + kappa

    # -- the loop --------------------------------------------------------- #
    def run(self) -> TrainResult:
        spec = self.spec
        every = spec.eval_every or self.S
        curve, step = [], 0
        for epoch in range(spec.max_epochs):
            self.values = []  # summed once per epoch: no extra operation per step
            for s, batch in enumerate(self.epoch_batches()):
                self.values.append(self.step(batch, s))
                step += 1
                if spec.early_stopping and step % every == 0:
                    self.evaluate(self.validation_score(), self.finite(), step, epoch)
                    if not self.es.any_active():
                        break
            objective = torch.stack(self.values).sum(0) / self.steps
            objective = objective + self.model.penalty()
            curve.append(self.archive.widen(objective))
            if not spec.early_stopping:
                loss = self.archive.narrow(curve[-1])
                self.evaluate(-loss, torch.isfinite(loss), step, epoch)
            self.report(epoch, curve[-1])
            if not self.es.any_active():
                break
        self.retire(torch.ones(self.lead, dtype=torch.bool))
        return self.result(curve)

    def evaluate(self, score: Tensor, finite: Tensor, step: int, epoch: int) -> None:
        """Early-stopping bookkeeping; drops finished members from the batch,
        group by group, once the batch can shrink by a tenth (see
        :mod:`.members`)."""
        self.es.update(score, finite, step, epoch)
        self.history.append(self.archive.widen(score))
        if self.single or not self.spec.compact:
            return
        plan = compaction(self.es.active)
        if plan is not None:
            keep, done = plan
            self.retire(done)
            self.lam = self.model.select(keep)
            self.opt.select(keep, self.model.state)
            self.es.select(keep, self.model.state)
            self.h = self.h.select(keep)
            self.values = [take(v, keep) for v in self.values]
            self.archive.cols = take(self.archive.cols, keep)
            self.lead = self.h.lead

    def retire(self, done: Tensor) -> None:
        """Store the final (best, where rolled back) weights of members ``done``
        (a mask over the batch's members)."""
        self.es.restore(self.spec.early_stopping, done)
        self.archive.store(done, self.model.state, self.es)

    def finite(self) -> Tensor:
        """Whether every weight of each member is finite."""
        checks = [
            torch.isfinite(t).flatten(len(self.lead)).all(-1) for t in self.model.state
        ]
        return torch.stack(checks).all(0)

    def epoch_batches(self):
        """This epoch's minibatches (views), broadcast over each group's members."""
        B = self.spec.batch_size
        Xe, ye, we = (None if t is None else self.lift(t) for t in self.epoch_rows())
        xs, ys = Xe.split(B, dim=-2), ye.split(B, dim=-1)
        ws = [None] * len(xs) if we is None else we.split(B, dim=-1)
        return zip(xs, ys, ws, strict=True)

    def epoch_rows(self) -> tuple[Tensor, Tensor, Tensor | None]:
        """This epoch's rows in training order, gathered once: X (.., S*B, d),
        y and w (.., S*B); groups with fewer rows are padded at the end."""
        B, pad, d = self.spec.batch_size, self.data.pad, self.data
        order = torch.full((len(self.gens), self.S * B), pad, dtype=torch.long)
        for g, (gen, idx) in enumerate(zip(self.gens, d.train_idx, strict=True)):
            perm = torch.randperm(len(idx), generator=gen)
            order[g, : len(idx)] = idx.cpu()[perm]
        if self.single:
            order = order[0, : len(d.train_idx[0])]
        order = order.to(self.dev, non_blocking=True)
        return d.X[order], d.y[order], d.w[order] if self.weighted else None

    def lift(self, t: Tensor) -> Tensor:
        """Rows gathered per group -> broadcast over the group's members."""
        return t if self.single else t.unsqueeze(1)

    def padded(self, idx_list: list[Tensor]) -> Tensor:
        idx = padded_rows(idx_list, self.data.pad, self.dev)
        return idx[0] if self.single else idx

    @torch.no_grad()
    def validation_score(self) -> Tensor:
        d = self.data
        idx = self.padded(d.val_idx)
        X, y, w = (self.lift(t[idx]) for t in (d.X, d.y, d.w))
        # The top-k SVM stops on its own criterion, top-k accuracy.
        top = int(self.spec.loss_params.get("k", 1))
        absolute = self.spec.validation_error == "absolute"
        return score_rows(self.model, X, y, w, self.spec.task, top, absolute)

    @torch.no_grad()
    def _init_lambda(self) -> Tensor:
        """lambda starts at the k-th largest individual loss of the initial
        model: with weights, the loss at which they, summed from the largest
        loss down, reach the top ``kappa`` of the weight in units of the
        smallest one (the rule of the aggregates in training)."""
        d = self.data
        idx = self.padded(d.train_idx)
        y, params = self.lift(d.y[idx]), self.spec.loss_params
        losses = _row_losses(self.model, self.lift(d.X[idx]), y, self.loss, params)
        w = self.lift(d.w[idx])
        _check_non_negative(losses, self.spec.loss)
        losses = losses.masked_fill(w <= 0, float("-inf"))
        if _equal_positive(d.w):  # rows of weight 0 do not count
            n = torch.stack([(d.w[t] > 0).sum() for t in d.train_idx]).to(self.dev)
            n = n[0] if self.single else n.unsqueeze(-1)
            k = ceil_count(self.h.kappa * n).clamp(1).long()
            ranked = losses.sort(-1, descending=True).values
            lam = ranked.gather(-1, (k - 1).unsqueeze(-1)).squeeze(-1)
        else:
            lam = _weighted_threshold(losses, w.expand_as(losses), self.h.kappa)
        return lam.clamp_min(0.0).to(losses.dtype).contiguous()

    def report(self, epoch: int, loss: Tensor) -> None:
        if self.spec.verbose and loss.numel() == 1:
            msg = f"epoch {epoch + 1}: loss={loss.item():.6f}"
            if self.history and self.spec.early_stopping:
                msg += f" validation_score={self.history[-1].item():.6f}"
            print(msg, flush=True)

    def result(self, curve) -> TrainResult:
        a = self.archive
        self.lam = self.model.rebind(a.state[0]) if a.is_stacked else self.lam
        lam = self.lam if self.uses_lam else torch.zeros(a.lead, device=self.dev)
        return TrainResult(
            lam=lam.detach().cpu().clone(),
            n_epochs=a.n_epochs.cpu(),
            best_step=a.best_step.cpu(),
            loss_curve=[c.detach().cpu() for c in curve],
            validation_scores=[v.cpu() for v in self.history],
            diverged=a.diverged.cpu(),
            converged=(a.n_epochs < self.spec.max_epochs).cpu() | a.stopped.cpu(),
            steps_per_epoch=self.S,
            optimizer_state=self.opt.state_dict() if self.single else None,
        )


def largest_training_loss(model, data: TrainData, spec: TrainSpec) -> float:
    """The largest individual loss of a one-member ``model`` over the training
    rows of positive weight of ``data`` (its first group), computed as in
    training (not in an enclosing autocast's lower precision)."""
    with plain_arithmetic(data.X.device), torch.no_grad():
        return _largest_loss(model, data, spec)


def _largest_loss(model, data: TrainData, spec: TrainSpec) -> float:
    idx = data.train_idx[0]
    loss = get_individual_loss(spec.loss)
    losses = _row_losses(model, data.X[idx], data.y[idx], loss, spec.loss_params)
    kept = losses[data.w[idx] > 0]
    return float(kept.max()) if kept.numel() else -math.inf


def _row_losses(model, X: Tensor, y: Tensor, loss, params: dict) -> Tensor:
    """Every member's individual losses on the rows of ``X``, by chunks of
    rows as the scoring (for many members the activations of every row at
    once are hundreds of megabytes; equal to one pass up to float rounding)."""
    parts = []
    for lo, hi, f in forward_rows(model, X):
        out, _ = individual_loss_gradient(loss, f, y[..., lo:hi], params)
        parts.append(out)
    return parts[0] if len(parts) == 1 else torch.cat(parts, -1)


def _check_non_negative(losses: Tensor, name: str) -> None:
    """The threshold is kept at ``lambda >= 0``, which is right for
    non-negative losses only (every built-in one is)."""
    if bool((losses < 0).any()):
        raise ValueError(
            f"the individual loss {name!r} gives negative values (smallest "
            f"{float(losses.min()):.4g}); the aggregates with a threshold "
            "('matk', 'stk') need non-negative losses: shift the loss by a "
            "constant, or use 'atk'"
        )


def _equal_positive(w: Tensor) -> bool:
    """Whether every positive weight of ``w`` is the same (no sample weights)."""
    positive = w[w > 0]
    return positive.numel() == 0 or bool((positive == positive[0]).all())


def _weighted_threshold(losses: Tensor, w: Tensor, kappa) -> Tensor:
    """The loss at which the weights ``w``, summed from the largest loss down,
    reach the top ``kappa`` of their total in units of the smallest positive
    weight (as the aggregates count them), along the last axis."""
    w = w.double()
    return weight_threshold(losses, w, _units(kappa, w, _lightest(w)))


def padded_rows(idx_list: list[Tensor], pad: int, dev) -> Tensor:
    """(groups, longest) row indices, shorter groups padded with ``pad``."""
    n = max(len(t) for t in idx_list)
    out = torch.full((len(idx_list), n), pad, dtype=torch.long)
    for g, t in enumerate(idx_list):
        out[g, : len(t)] = t.cpu()
    return out.to(dev)


#: The aggregates whose minibatch weights :meth:`_Loop._reweighed` sets
#: against the group's mean weight (the others, among them the maximum, which
#: reads weights as a mask, keep each minibatch's own normalisation).
REWEIGHED = ("average", "atk", "matk", "stk")


def _batch_weighing(data: TrainData, spec: TrainSpec, sizes, S: int, single: bool):
    """``(mean weight, rows)`` for :meth:`_Loop._reweighed` where the
    positive weights of a group's training rows differ: each group's mean
    weight over its training rows (shape ``(G, 1)``, a number for one
    member; ``inf`` for a group whose positive weights are all equal, which
    keeps each minibatch's own normalisation: a factor of 1) and the real
    rows of each of the ``S`` steps' minibatches (``(S, G, 1)``, ``(S,)``;
    at least 1);
    None where no group's weights differ. A group's rows outside its
    training rows (validation rows, other folds) play no part."""
    if spec.aggregate not in REWEIGHED:
        return None
    means = []
    for t in data.train_idx:
        w = data.w[t.to(data.w.device)].double()
        means.append(math.inf if _equal_positive(w) else float(w.mean()))
    if all(math.isinf(m) for m in means):
        return None
    B = spec.batch_size
    steps = torch.arange(S).unsqueeze(-1) * B
    rows = (torch.tensor(sizes).unsqueeze(0) - steps).clamp(1, B).to(data.w)
    if single:
        return means[0], rows[:, 0].tolist()
    mean_w = torch.tensor(means, dtype=data.w.dtype, device=data.w.device)
    return mean_w.unsqueeze(-1), rows.unsqueeze(-1)


def _step_mask(sizes, B, S, dev) -> Tensor | None:
    if len(set(sizes)) == 1:
        return None
    s = torch.arange(S).unsqueeze(-1)
    return (torch.tensor(sizes).unsqueeze(0) > s * B).float().to(dev)
