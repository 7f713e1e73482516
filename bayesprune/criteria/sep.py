"""SEP: data-dependent soft pruning with squeeze-excitation gates."""
from __future__ import annotations

import torch
from torch import nn

from ..gates import ChannelGates
from ..surgery import fold_gates
from ..training import fit, total_steps
from .training_time import SearchContext, TrainingCriterion, channel_mask, split_by_group


def spatial_mean(y: torch.Tensor) -> torch.Tensor:
    """(N, C, ...) -> (N, C): the mean over positions (a linear layer's (N, C) output as it is)."""
    return y.mean(dim=tuple(range(2, y.dim()))) if y.dim() > 2 else y


class SqueezeExcitation(nn.Module):
    """``g(y) = 2 sigmoid(W2 relu(W1 mean_hw(y)))``, one gate per channel and sample (Hu et al.
    2018). ``W2 = 0, b2 = 0`` at the start, so every gate starts at exactly 1 and a pre-trained
    network is unchanged until the gates learn."""

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        self.squeeze = nn.Linear(channels, max(4, channels // reduction))
        self.excite = nn.Linear(self.squeeze.out_features, channels)
        nn.init.zeros_(self.excite.weight)
        nn.init.zeros_(self.excite.bias)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return 2.0 * torch.sigmoid(self.excite(torch.relu(self.squeeze(spatial_mean(y)))))


class SEGates:
    """SE gates times a binary pruning mask on every gated output of a network's channel groups
    (the places :class:`~bayesprune.gates.ChannelGates` gates): ``y_c <- m_c g_c(y) y_c``.
    A masked channel outputs exactly 0, so neither it nor its filters get a gradient: it is out
    of the forward and the backward computation without being removed."""

    def __init__(self, gates: ChannelGates, reduction: int = 4):
        self.gates = gates
        self.mask = torch.ones(gates.num_channels)
        self.modules = nn.ModuleList(SqueezeExcitation(len(index), reduction) for _, index in gates.targets)
        self.importance = torch.zeros(gates.num_channels, dtype=torch.float64)
        self.mean_gate = torch.zeros(gates.num_channels, dtype=torch.float64)
        self.observed = torch.zeros(gates.num_channels, dtype=torch.float64)
        self.recording = False
        self._hooks: list = []

    def attach(self, device) -> "SEGates":
        self.modules.to(device)
        for (module, index), se in zip(self.gates.targets, self.modules):
            self._hooks.append(module.register_forward_hook(self._hook(index, se)))
        return self

    def detach(self) -> None:
        for handle in self._hooks:
            handle.remove()
        self._hooks.clear()

    def _hook(self, index: torch.Tensor, se: SqueezeExcitation):
        def apply(_module, _inputs, output):
            gate = se(output) * self.mask[index].to(output.device)
            if self.recording:  # data-dependent importance: the expected size of the gated output
                response = spatial_mean(output.detach().abs())
                self.importance.index_add_(0, index, (gate.detach() * response).sum(0).double().cpu())
                self.mean_gate.index_add_(0, index, gate.detach().sum(0).double().cpu())
                self.observed.index_add_(0, index, torch.full((len(index),), float(len(output)), dtype=torch.float64))
            return output * gate.reshape(gate.shape + (1,) * (output.dim() - 2))
        return apply

    @torch.no_grad()
    def record(self, model: nn.Module, batches) -> None:
        """Average gates and gated responses over ``batches`` (eval mode)."""
        for buffer in (self.importance, self.mean_gate, self.observed):
            buffer.zero_()
        was_training = model.training
        model.eval()
        self.recording = True
        try:
            for xb, _ in batches:
                model(xb)
        finally:
            self.recording = False
            model.train(was_training)
        seen = self.observed.clamp_min(1.0)
        self.importance /= seen
        self.mean_gate /= seen


class SEP(TrainingCriterion):
    """Ding, Zhang, Jia, Zhong & Han 2021, "Where to Prune: Using LSTM to Guide Data-Dependent Soft
    Pruning", IEEE TIP 30 (= Zhang 2023 thesis, ch. 4), Squeeze-Excitation-Pruning: SE gates (Hu et
    al. 2018) are trained with the network; the channels the pruning scheme picks are excluded from
    the forward and backward computation by a binary mask but not removed; at the end they are
    removed physically.

    Our choices where the public description is open: one SE module per gated BatchNorm (gates
    ``2 sigmoid``, starting at 1); a channel's data-dependent importance is the mean over the
    calibration batches of its gate times its mean absolute response; the mask is updated
    ``updates`` times, evenly over the first ``ramp`` share of the search's steps, its budget
    falling geometrically to the round's (allocated by the run's ``--allocation``, e.g. ``lstm``),
    and the rest of the search trains under the final mask; at the end each survivor's mean gate
    over the calibration batches is folded into its weights (the input dependence is dropped:
    an approximation, which the accuracy right after the cut measures).

    Params: ``reduction`` of the SE bottleneck, ``updates``, ``ramp``.
    """

    name = "sep"
    description = "squeeze-excitation soft pruning, masked out of forward and backward (Ding et al. 2021)"
    source = "Ding, Zhang et al. 2021, IEEE TIP 30:293-304 (Zhang 2023 thesis, ch. 4)"

    def __init__(self, seed: int = 0, reduction: int = 4, updates: int = 8, ramp: float = 0.5):
        super().__init__(seed)
        self.reduction, self.updates, self.ramp = reduction, updates, ramp

    def search(self, model, context: SearchContext) -> dict:
        gates = SEGates(ChannelGates(context.graph), self.reduction)
        device = context.calibration.device
        start = context.cost_model.full(context.budget.kind)
        total = total_steps(context.fit, len(context.calibration.data.train_y))
        # mask updates at evenly spaced steps of the first `ramp` share; the rest trains under the final mask
        points = sorted({max(1, round(k / self.updates * self.ramp * total)) for k in range(1, self.updates + 1)})
        masked: list[dict] = []

        def update(step: int) -> None:  # the scheme: geometric ramp of the budget
            if step not in points:
                return
            gates.record(model, context.calibration.batches())
            scores = split_by_group(gates.importance, context.graph)
            progress = (points.index(step) + 1) / len(points)
            masked.append(context.allocate(scores, start * (context.budget.target / start) ** progress))
            gates.mask = channel_mask(context.graph, masked[-1])

        gates.attach(device)
        try:
            fit(model, context.calibration.data, context.fit_config(), context.generator, device, context.progress,
                desc="sep search", extra_parameters=list(gates.modules.parameters()), after_step=update)
            if not masked:  # --search-epochs 0: mask the whole budget by the untrained gates
                points = [0]
                update(0)
            gates.record(model, context.calibration.batches())
        finally:
            gates.detach()
        mean_gate = (gates.mean_gate * gates.mask.double()).float()
        fold_gates(gates.gates, mean_gate.to(next(model.parameters()).device))  # masked channels: exactly 0
        self.removal = masked[-1]
        return {"search_epochs": context.fit.epochs, "mask_updates": len(masked),
                "mean_gate_of_survivors": float(mean_gate[gates.mask > 0].mean())}
