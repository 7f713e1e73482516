"""Prunable channel groups, physical removal and MAC/param counting, all on torch-pruning.

A *channel group* is a set of channels that must be removed together: a conv's filters plus the
BN, the next layers' input channels and, through residual additions or depthwise convolutions,
every other layer tied to them. torch-pruning's ``DependencyGraph`` (DepGraph, Fang et al. 2023)
finds these couplings; this module names them, keeps a cumulative pruning history across rounds
and replays it to reload a pruned network.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
import torch_pruning as tp
from torch import nn

from .errors import ModelError
from .nets import Architecture


def is_depthwise(module: nn.Module) -> bool:
    """A convolution with one filter per input channel (groups == in == out channels)."""
    return (isinstance(module, nn.Conv2d) and module.groups > 1
            and module.groups == module.in_channels == module.out_channels)


def example_input(arch: Architecture, batch: int = 1, device="cpu") -> torch.Tensor:
    return torch.randn(batch, arch.in_channels, arch.image_size, arch.image_size, device=device)


@torch.no_grad()
def count_macs_params(model: nn.Module, inputs: torch.Tensor) -> tuple[int, int]:
    """MACs and parameters by torch-pruning's counter (convs, linears, BN, activations, pools)."""
    was_training = model.training
    model.eval()
    macs, params = tp.utils.count_ops_and_params(model, inputs)
    model.train(was_training)
    return int(macs), int(params)


@torch.no_grad()
def output_layers(model: nn.Module, inputs: torch.Tensor) -> list[nn.Module]:
    """The conv/linear layers whose output is the network's output (the classifier): never pruned.

    Found by identity of the returned tensor; if the output passes through further ops, the last
    executed conv/linear is taken, which is the classifier in every feed-forward classifier.
    """
    executed: list[tuple[nn.Module, torch.Tensor]] = []
    hooks = [m.register_forward_hook(lambda mod, _i, out: executed.append((mod, out)))
             for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        was_training = model.training
        model.eval()
        out = model(inputs)
        model.train(was_training)
    finally:
        for h in hooks:
            h.remove()
    if not executed:
        raise ModelError("the model has no convolution or linear layer to prune; pass a CNN")
    exact = [m for m, o in executed if o is out]
    return exact or [executed[-1][0]]


@dataclass
class ChannelGroup:
    """One prunable group. ``name`` is the root layer's module name; ``size`` its channel count."""

    name: str
    root: nn.Module
    size: int
    tp_group: "tp.dependency.Group" = field(repr=False)

    def layers(self, out_channels: bool = True) -> list[tuple[nn.Module, list[int], list[int]]]:
        """``(module, local_indices, root_indices)`` of the group's output-side (or input-side) deps."""
        graph = self.tp_group._DG
        test = graph.is_out_channel_pruning_fn if out_channels else graph.is_in_channel_pruning_fn
        return [(dep.target.module, list(item.idxs), list(item.root_idxs))
                for item in self.tp_group.items for dep in [item.dep] if test(dep.handler)]


class ChannelGraph:
    """The prunable channel groups of ``model`` and the physical cut (on the model in place)."""

    def __init__(self, model: nn.Module, inputs: torch.Tensor, ignored_layers: list[nn.Module] | None = None):
        self.model = model
        self.inputs = inputs
        ignored = list(ignored_layers) if ignored_layers is not None else output_layers(model, inputs)
        self.ignored = ignored
        was_training = model.training
        model.eval()
        self.dg = tp.DependencyGraph().build_dependency(model, example_inputs=inputs, verbose=False)
        model.train(was_training)
        self.module_names = {m: n for n, m in model.named_modules()}
        self.groups: list[ChannelGroup] = []
        for group in self.dg.get_all_groups(ignored_layers=ignored, root_module_types=(nn.Conv2d, nn.Linear)):
            root = group[0].dep.target.module
            self.groups.append(ChannelGroup(self.module_names[root], root, len(group[0].idxs), group))
        if not self.groups:
            raise ModelError("the model has no prunable channel group (only its classifier is a "
                             "conv/linear layer); pass a CNN with hidden convolutions")

    def by_name(self) -> dict[str, ChannelGroup]:
        return {g.name: g for g in self.groups}

    def index_of(self, module: nn.Module) -> int:
        """Index of the group whose output channels ``module`` produces (matched by identity, so
        a group of another DependencyGraph of the same network, e.g. Torch-Pruning's, finds it)."""
        for index, group in enumerate(self.groups):
            if any(m is module for m, _, _ in group.layers(out_channels=True)):
                return index
        raise KeyError(f"{type(module).__name__} is in no channel group of this network")

    def prune(self, removals: dict[str, list[int]]) -> list:
        """Remove ``removals[group name]`` channels (indices local to the current group) physically.

        Returns the torch-pruning history entries of this cut, to extend the cumulative history.
        """
        groups = self.by_name()
        start = len(self.dg.pruning_history())
        for name, idxs in removals.items():
            if not idxs:
                continue
            group = groups[name]
            if len(set(idxs)) >= group.size:
                raise ValueError(f"refusing to remove all {group.size} channels of {name}")
            handler = group.tp_group[0].dep.handler
            pruning_group = self.dg.get_pruning_group(group.root, handler, sorted(int(i) for i in set(idxs)))
            pruning_group.prune()
        return copy.deepcopy(self.dg.pruning_history()[start:])


def replay_pruning_history(model: nn.Module, arch: Architecture, history: list) -> None:
    """Re-apply a cumulative pruning history to a freshly built (unpruned) ``model``."""
    was_training = model.training
    model.eval()
    dg = tp.DependencyGraph().build_dependency(model, example_inputs=example_input(arch), verbose=False)
    model.train(was_training)
    try:
        dg.load_pruning_history([[n, o, list(i)] for n, o, i in history])
    except (AttributeError, ValueError, IndexError, RuntimeError) as exc:
        raise ModelError(f"the checkpoint's pruning history does not fit architecture {arch.name} "
                         f"({exc}); pass the --model it was pruned from") from exc


def check_prunable(model: nn.Module, inputs: torch.Tensor) -> None:
    """Cut one channel of every group on a copy and run it. A layer torch-pruning cannot follow
    (custom channel mixing, ...) fails here, before any work is done, with its name."""
    trial = copy.deepcopy(model).eval()
    try:
        graph = ChannelGraph(trial, inputs)
        graph.prune({g.name: [0] for g in graph.groups if g.size > 1})
        with torch.no_grad():
            trial(inputs)
    except ModelError:
        raise
    except Exception as exc:  # whatever the layer raises, the user's fix is the same
        custom = sorted({f"{name} ({type(m).__name__})" for name, m in model.named_modules()
                         if name and not type(m).__module__.startswith("torch.")
                         and any(True for _ in m.parameters(recurse=False))})
        where = f"layer {', '.join(custom)}" if custom else "a layer of this model"
        raise ModelError(f"cannot prune this model: {where} is not supported by torch-pruning's channel "
                         f"groups ({str(exc).splitlines()[0][:100]}); register a torch-pruning pruner "
                         "for it or build the model from standard layers") from None
