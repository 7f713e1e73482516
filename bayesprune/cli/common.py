"""Options and helpers shared by several commands."""
from __future__ import annotations

import argparse
import time
from pathlib import Path


def model_options(p, defaults) -> None:
    """The network and its data, the same for run, compare and plan."""
    p.add_argument("--model", default=defaults.model,
                   help="shipped id (bayesprune models), architecture, checkpoint .pt, tv:NAME or pkg.mod:factory")
    p.add_argument("--weights", help="state dict for an architecture given by name (loaded weights_only)")
    p.add_argument("--trust-pickle", action="store_true",
                   help="load --model/--weights with full pickle (runs code in the file: only for files you made)")
    p.add_argument("--data", default=defaults.data, help="mnist5k | digits | fashion-mnist | cifar10 | imagefolder")
    p.add_argument("--data-dir", help="where the data set's files are (fashion-mnist, cifar10, imagefolder)")


def declared_options(args) -> dict:
    """``--criterion-option``/``--prior-option`` NAME=VALUE pairs (checked against the class's
    constructor when the config is validated; see bayesprune.options)."""
    from ..options import parse_assignments

    return {"criterion_options": parse_assignments(args.criterion_option, "--criterion-option"),
            "prior_options": parse_assignments(args.prior_option, "--prior-option")}


def fresh_run_dir(kind: str = "run") -> str:
    """``runs/<kind>-<timestamp>``, with a numeric suffix if one started in the same second."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    candidate, n = Path("runs") / f"{kind}-{stamp}", 1
    while candidate.exists():
        n += 1
        candidate = Path("runs") / f"{kind}-{stamp}-{n}"
    return str(candidate)



def calibration_options(p, defaults) -> None:
    """The training batches data-dependent criteria read, and the reparameterization around a cut."""
    p.add_argument("--batch-size", type=int, default=defaults.batch_size)
    p.add_argument("--calibration-batches", type=int, default=defaults.calibration_batches,
                   help="training batches data-dependent criteria and compensation see")
    p.add_argument("--reparameterize", default=defaults.reparameterize,
                   help="around each cut: none | mean (fold posterior gate means, bias-compensate removed "
                        "channels) | lsq (fold, then least-squares refit of the next layers; the default)")
    p.add_argument("--adapt-batchnorm", action=argparse.BooleanOptionalAction, default=defaults.adapt_batchnorm,
                   help="after each cut, re-estimate BatchNorm statistics on the calibration batches (Li et al. "
                        "2020's adaptive BatchNorm; no gradient step). Default: on with --epochs 0 (no "
                        "fine-tuning re-estimates them), else off")


def posterior_options(b, defaults) -> None:
    """The options of bayes's posterior, the same for run, compare and plan."""
    b.add_argument("--prior", default=defaults.prior, help="horseshoe | regularized-horseshoe | normal-jeffreys")
    b.add_argument("--within", default=defaults.within,
                   help="bayes: the criterion that orders channels inside a layer (default obs: the channels the "
                        "least-squares refit repairs best go first)")
    b.add_argument("--no-interactions", dest="interactions", action="store_false",
                   help="bayes: price a layer's cut with the diagonal of its Fisher block only, ignoring how "
                        "channels removed together interact (ablation)")
    b.add_argument("--no-weight-norm-prior", dest="weight_norm_prior", action="store_false",
                   help="bayes: put the prior on the gate alone, not on the weight-norm-scaled gate (ablation)")
    b.add_argument("--prior-option", action="append", metavar="NAME=VALUE",
                   help="any other option of the prior, e.g. slab_scale=1 for regularized-horseshoe (repeatable; "
                        "bayesprune criteria lists them)")
    b.add_argument("--posterior-draws", type=int, default=defaults.posterior_draws, help="draws per chain")
    b.add_argument("--chains", type=int, default=defaults.chains,
                   help="independent sets of posterior draws (bayes-svi: SVI fits or NUTS chains) from "
                        "different seeds, pooled; 2 or more give R-hat in the report (default 2)")
