"""The one scoring contract: a criterion maps a channel group to one score per channel.

A :class:`Criterion` *is* a Torch-Pruning ``Importance`` (``__call__(group) -> 1-D tensor``), so
the same object plugs into bayesprune's rounds and into Torch-Pruning's own pruners. Higher
scores mean "keep". Data-dependent criteria gather statistics in :meth:`Criterion.prepare`
before scoring.
"""
from __future__ import annotations

import abc
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Iterator

import numpy as np
import torch
import torch_pruning as tp
from torch import nn

from ..data import ImageData, iterate_batches
from ..decision import CostModel, RoundBudget
from ..distributed import SINGLE, Collective
from ..groups import ChannelGraph
from ..options import bind_options


@dataclass
class Calibration:
    """The data a data-dependent criterion may look at: the training split, on ``device``."""

    data: ImageData
    device: torch.device
    batch_size: int = 128
    num_batches: int = 8
    seed: int = 0
    collective: Collective = SINGLE  # the processes that share statistics (bayesprune.distributed)

    def batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The first ``num_batches`` training batches (the split is already shuffled)."""
        batches = iterate_batches(self.data.train_x, self.data.train_y, self.batch_size, device=self.device)
        for _, batch in zip(range(self.num_batches), batches):
            yield batch


class Criterion(tp.importance.Importance):
    """Base class. Subclasses set ``name``, ``description``, ``source`` and implement ``__call__``."""

    name: ClassVar[str]
    description: ClassVar[str]
    source: ClassVar[str]
    needs_data: ClassVar[bool] = False
    trains: ClassVar[bool] = False  # prunes while training: see bayesprune.criteria.training_time
    default_allocation: ClassVar[str] = "uniform"  # used when the run names no --allocation
    own_widths: ClassVar[bool] = False  # True: it decides the widths under --allocation global itself
    # constructor parameters set otherwise than by --criterion-option (their own flags, the seed)
    set_by_flags: ClassVar[tuple[str, ...]] = ("seed",)

    @classmethod
    def from_config(cls, config) -> "Criterion":
        """This criterion as a run's :class:`~bayesprune.config.PruneConfig` asks for it: the one
        place a criterion reads the run's options. Default: its constructor's plain options from
        ``--criterion-option`` (:mod:`bayesprune.options`), and the run's seed if it takes one."""
        options = bind_options(cls, config.criterion_options, "--criterion-option", reserved=cls.set_by_flags)
        takes_seed = "seed" in inspect.signature(cls).parameters
        return cls(**options, seed=config.seed) if takes_seed else cls(**options)

    def check(self, data: ImageData) -> None:
        """Refuse data this criterion cannot work with, before a run writes anything. Default: accept."""

    def prepare(self, model: nn.Module, graph: ChannelGraph, calibration: Calibration) -> None:
        """Collect whatever statistics scoring needs (activations, gradients). Default: nothing."""

    @abc.abstractmethod
    def __call__(self, group) -> torch.Tensor:
        """Per-channel scores of a torch-pruning ``Group``, indexed like its root layer's channels."""

    def score(self, graph: ChannelGraph) -> dict[str, torch.Tensor]:
        """Scores of every group of ``graph``, keyed by group name."""
        return {g.name: self(g.tp_group).detach().float().cpu() for g in graph.groups}

    def select(self, graph: ChannelGraph, cost_model: CostModel, budget: RoundBudget) -> dict[str, list[int]]:
        """Channels to remove per group to meet ``budget.target`` (``budget.final_target``: the last
        round's, for criteria that plan ahead). Point estimates: allocate by score."""
        return budget.allocate(self.score(graph), cost_model)

    # Hooks of the iterative engine; a point estimate needs none of them. ----------------------
    def reparameterization(self) -> torch.Tensor | None:
        """Per-channel multipliers to fold into the weights before the cut (None: none)."""
        return None

    def input_statistics(self):
        """The :class:`~bayesprune.surgery.compensate.NamedStatistics` of the network this round cuts,
        if scoring already gathered them (as it folds :meth:`reparameterization`'s multipliers), so
        that the engine's compensation reads no data again (None: the engine gathers them)."""
        return None

    def refit_shares(self) -> dict[str, np.ndarray] | None:
        """Per group name, the share of a cut of the first k channels of this criterion's order that
        the ``lsq`` refit leaves (:func:`~bayesprune.surgery.residual.compensated_share`), if scoring
        computed them on the network :meth:`input_statistics` names (None: not computed)."""
        return None

    def prune_probability(self) -> np.ndarray | None:
        """Predicted probability that each channel is pruned by the final round (None: no model)."""
        return None

    def keep_probability(self) -> np.ndarray | None:
        """Probability that each channel survives this round's budget (None: no model)."""
        return None

    def round_record(self) -> dict:
        """Facts about this round's scoring to add to the round's record (e.g. posterior summaries)."""
        return {}

    def after_cut(self, removal: dict[str, list[int]]) -> None:
        """Called once the cut is made (e.g. to carry a posterior into the next round)."""

    def write_artifacts(self, directory: Path, round_index: int) -> list[str]:
        """Write per-round outputs (posteriors, tables) into the run directory; return file names."""
        return []

    # What --resume must restore between rounds (tensors and plain data only: no pickle). -----
    def state_dict(self) -> dict:
        """State carried from one round to the next. Default: the states of the criterion's own
        random generators, so a resumed run draws what the uninterrupted one would have."""
        return {name: value.get_state() for name, value in vars(self).items() if isinstance(value, torch.Generator)}

    def load_state_dict(self, state: dict) -> None:
        for name, value in state.items():
            getattr(self, name).set_state(value)
