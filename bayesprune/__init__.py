"""bayesprune: channel pruning of CNNs with Bayesian statistics, on torch-pruning's DepGraph.

Pipeline: data -> nets -> groups (channel groups, cut, MAC count) -> criteria (scores; bayes:
posterior over channel gates) -> decision (budgeted allocation) -> surgery (fold, compensate,
widen) -> rounds (cut, annealed fine-tune, record) -> run directory.
"""
from .bayes.priors import PRIORS, ScalePrior
from .bayes.priors.base import half_cauchy_log_density
from .checkpoint import load_checkpoint, save_checkpoint
from .criteria import CRITERIA, BayesLaplace, Criterion, make_criterion
from .data import DATASETS, load_dataset
from .decision import Budget, CostModel, allocate
from .errors import BayesPruneError
from .groups import ChannelGraph, count_macs_params
from .nets import ARCHITECTURES, Architecture, build_model
from .config import PruneConfig
from .rounds import run_pruning

__version__ = "0.1.0"

__all__ = ["ARCHITECTURES", "Architecture", "BayesLaplace", "BayesPruneError", "Budget", "CRITERIA", "ChannelGraph",
           "CostModel", "Criterion", "DATASETS", "PRIORS", "PruneConfig", "ScalePrior", "allocate", "build_model",
           "count_macs_params", "half_cauchy_log_density", "load_checkpoint", "load_dataset", "make_criterion",
           "run_pruning", "save_checkpoint"]
