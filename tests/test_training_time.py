"""Issue 9: PFAM, SEP, search-and-train and the LSTM allocation, against hand-checkable cases."""
import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from bayesprune.gates import ChannelGates
from bayesprune.checkpoint import load_checkpoint
from bayesprune.cli import main
from bayesprune.criteria import make_criterion
from bayesprune.criteria.base import Calibration
from bayesprune.criteria.pfam import attention_scores
from bayesprune.criteria.search_train import threshold_masks
from bayesprune.distillation import multi_teacher_loss
from bayesprune.criteria.sep import SEGates
from bayesprune.criteria.training_time import SearchContext, torch_cost
from bayesprune.decision import CostModel
from bayesprune.decision.lstm import LSTMAllocation, counts_for
from bayesprune.groups import ChannelGraph, count_macs_params
from bayesprune.pretrained import resolve_model
from bayesprune.training import FitConfig, evaluate, fit, seed_everything
from bayesprune.decision import RoundBudget

QUICK = ["--train-subset", "512", "--test-subset", "256", "--quiet", "--device", "cpu"]


class OneByOne(nn.Module):
    """1x1 conv (2 -> 3) -> BN -> ReLU -> 1x1 conv (3 -> 2) -> mean -> linear."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(2, 3, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(3)
        self.conv2 = nn.Conv2d(3, 2, 1, bias=False)
        self.head = nn.Linear(2, 2)

    def forward(self, x):
        return self.head(self.conv2(torch.relu(self.bn1(self.conv1(x)))).mean((2, 3)))


def _one_by_one(filters):
    net = OneByOne().eval()
    with torch.no_grad():
        net.conv1.weight.copy_(torch.tensor(filters, dtype=torch.float32).view(3, 2, 1, 1))
    graph = ChannelGraph(net, torch.randn(1, 2, 3, 3))
    return net, graph, next(g for g in graph.groups if g.root is net.conv1)


def test_pfam_attention_by_hand_the_least_correlated_filter_scores_lowest():
    _, _, group = _one_by_one([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0]])
    # cosines: f0.f1 = 1, f0.f2 = f1.f2 = 0; temperature 0.5, self excluded:
    # row 0 = softmax(-, 2, 0) = (0, e^2/(e^2+1), 1/(e^2+1)); row 1 alike; row 2 = (1/2, 1/2, 0)
    big, small = math.e ** 2 / (math.e ** 2 + 1), 1 / (math.e ** 2 + 1)
    scores = attention_scores(group.tp_group, temperature=0.5)
    assert scores.tolist() == pytest.approx([big + 0.5, big + 0.5, 2 * small])


def _context(model, data, target_fraction=0.5, epochs=0.25, allocation="uniform"):
    inputs = data.test_x[:1]
    graph = ChannelGraph(model, inputs)
    cost_model = CostModel.build(graph)
    calibration = Calibration(data, torch.device("cpu"), num_batches=2)
    target = target_fraction * cost_model.full("macs")
    return SearchContext(graph, cost_model, RoundBudget(target, target, "macs", allocation, 0.9, 1), calibration,
                         FitConfig(epochs=epochs), seed_everything(0), progress=False)


def test_pfam_zeroes_filters_after_the_epoch_and_they_regrow(tiny_mnist):
    model = resolve_model("smallcnn-mnist5k", tiny_mnist).model
    context = _context(model, tiny_mnist)
    pfam = make_criterion("pfam")
    removal = pfam.soft_prune(context)
    group = context.graph.groups[0]
    conv = group.root
    zeroed = removal[group.name]
    assert zeroed and conv.weight[zeroed].abs().sum() == 0  # soft-pruned: zero, still there
    assert conv.weight.shape[0] == group.size
    fit(model, tiny_mnist, FitConfig(epochs=0.25), seed_everything(0), torch.device("cpu"), progress=False)
    assert (conv.weight[zeroed].flatten(1).abs().sum(1) > 0).all()  # the next updates rebuild them
    stats = pfam.search(model, _context(model, tiny_mnist))
    removal = pfam.select(context.graph, context.cost_model, context.budget)
    assert stats["soft_prunings"] == 1 and conv.weight[removal[group.name]].abs().sum() == 0


def test_sep_masked_channels_get_no_output_and_no_gradient():
    net, graph, group = _one_by_one([[1.0, 0.5], [0.3, -2.0], [0.7, 0.7]])
    net.train()
    x = torch.randn(4, 2, 5, 5)
    reference = net(x)
    gates = SEGates(ChannelGates(graph)).attach("cpu")
    try:
        assert torch.allclose(net(x), reference)  # gates start at exactly 1: the network is unchanged
        gates.mask = torch.ones(gates.gates.num_channels)
        gates.mask[gates.gates.offsets[graph.groups.index(group)] + 1] = 0.0  # conv1's channel 1
        seen = {}
        handle = net.bn1.register_forward_hook(lambda _m, _i, out: seen.setdefault("bn", out))
        net(x).sum().backward()
        handle.remove()
    finally:
        gates.detach()
    assert seen["bn"][:, 1].abs().sum() == 0  # masked: out of the forward computation ...
    assert net.conv1.weight.grad[1].abs().sum() == 0 and net.bn1.weight.grad[1] == 0  # ... and of the backward
    assert net.conv1.weight.grad[[0, 2]].abs().sum() > 0
    assert all(p.grad is not None for p in gates.modules.parameters())  # the SE gates learn


def test_search_train_threshold_masks_are_the_masks_the_thresholds_say():
    importance = [torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([5.0, 1.0, 3.0])]
    thresholds = torch.tensor([0.0, 0.5], requires_grad=True)
    hard, soft = threshold_masks(importance, thresholds, caps=np.array([1, 2]))
    # z of layer 0 = (-1.34, -0.45, 0.45, 1.34): z >= 0 keeps 2, but at most 1 may go -> keep the top 3
    # z of layer 1 = (1.22, -1.22, 0): z >= 0.5 keeps only channel 0 (2 removed, the cap)
    assert hard[0].tolist() == pytest.approx([0, 1, 1, 1], abs=1e-6)
    assert hard[1].tolist() == pytest.approx([1, 0, 0], abs=1e-6)
    sum(h.sum() for h in hard).backward()  # straight-through: the forward is hard, the gradient soft
    assert thresholds.grad is not None and (thresholds.grad < 0).all()  # a higher threshold keeps fewer


def test_multi_teacher_loss_by_hand():
    student = torch.tensor([[2.0, 0.0]])
    labels = torch.tensor([0])
    ce = math.log(1 + math.exp(-2.0))
    assert multi_teacher_loss(student, [], labels).item() == pytest.approx(ce)
    assert multi_teacher_loss(student, [student.clone()], labels, alpha=0.5).item() == pytest.approx(0.5 * ce)
    # two teachers, T = 1: the mean of KL(p_k || p); p = softmax(2, 0), p_1 = (1/2, 1/2), p_2 = p
    p = torch.softmax(student, 1)[0]
    kl = float((0.5 * torch.log(0.5 / p)).sum())
    loss = multi_teacher_loss(student, [torch.zeros(1, 2), student], labels, temperature=1.0, alpha=0.5)
    assert loss.item() == pytest.approx(0.5 * ce + 0.5 * kl / 2, rel=1e-5)


def test_torch_cost_matches_the_cost_model(tiny_mnist):
    model = resolve_model("smallcnn-mnist5k", tiny_mnist).model
    cost_model = CostModel.build(ChannelGraph(model, tiny_mnist.test_x[:1]))
    keep = cost_model.sizes - np.arange(len(cost_model.sizes))
    assert torch_cost(cost_model, torch.tensor(keep, dtype=torch.float64), "macs").item() == \
        pytest.approx(cost_model.cost(keep, "macs"))


def _linear_cost(sizes):
    """cost = sum of kept channels (no pairs), for hand-checkable allocations."""
    n = len(sizes)
    empty = (np.zeros(0, dtype=int), np.zeros(0, dtype=int), np.zeros(0))
    return CostModel(np.array(sizes, dtype=float), [f"g{i}" for i in range(n)], {"macs": 0.0, "params": 0.0},
                     {"macs": np.ones(n), "params": np.ones(n)}, {"macs": empty, "params": empty})


def test_lstm_rates_meet_the_budget_and_follow_the_logits():
    cost_model = _linear_cost([10, 10])
    cap = np.array([9, 9])
    # equal logits: equal removal; 20 -> 12 needs 8 removed: 4 + 4
    assert counts_for(np.zeros(2), cost_model, 12, "macs", cap).tolist() == [4, 4]
    skewed = counts_for(np.array([2.0, -2.0]), cost_model, 12, "macs", cap)
    assert cost_model.cost(10 - skewed, "macs") <= 12 and skewed[0] > skewed[1]


def test_lstm_policy_learns_which_layer_matters(tiny_mnist):
    model = resolve_model("smallcnn-mnist5k", tiny_mnist).model
    graph = ChannelGraph(model, tiny_mnist.test_x[:1])
    cost_model = CostModel.build(graph)
    cap = np.floor(0.9 * cost_model.sizes).astype(int)
    target = 0.5 * cost_model.full("macs")
    learned = {}
    for precious in (0, 1):  # a reward that punishes pruning one layer: the policy learns to spare it
        allocation = LSTMAllocation(graph, None, seed=0, episodes=60,
                                    reward=lambda counts, g=precious: -float(counts[g]) / cost_model.sizes[g])
        learned[precious] = allocation.counts(cost_model, target, "macs", cap)
        assert cost_model.cost(cost_model.sizes - learned[precious], "macs") <= target
    assert learned[0][0] < learned[1][0] and learned[1][1] < learned[0][1]


@pytest.mark.parametrize("method, extra", [
    ("pfam", []), ("sep", ["--allocation", "lstm"]), ("search-train", ["--from-scratch"]),
])
def test_training_time_methods_run_end_to_end(tmp_path, method, extra):
    out = tmp_path / method
    assert main(["run", "--method", method, "--rounds", "2", "--target-macs", "0.5", "--epochs", "0.25",
                 "--search-epochs", "0.5", "--out", str(out), "--no-report", *QUICK, *extra]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["criterion"] == method and summary["final"]["macs"] <= 0.5 * summary["base"]["macs"]
    rounds = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    searched = [r for r in rounds if r["event"] == "round"]
    assert [r["search_epochs"] for r in searched] == [0.5, 0.5] and all(r["search"]["seconds"] > 0 for r in searched)
    if method == "search-train":
        assert rounds[0]["from_scratch"] and rounds[0]["accuracy"] < 0.3  # the base is untrained
        assert searched[0]["search"]["teachers"] >= 1
    model, _, _ = load_checkpoint(out / "model.pt")
    assert count_macs_params(model, torch.zeros(1, 1, 28, 28))[0] == summary["final"]["macs"]
    if method == "pfam":  # the report says what the search consumed
        assert main(["report", str(out)]) == 0
        assert "0.5 epochs of training before each cut, then 0.25 of fine-tuning" in \
            (out / "report" / "summary.md").read_text()


def test_sep_cut_is_the_function_the_masked_search_trained(tiny_mnist):
    """Masked channels are silenced and survivors' mean gates folded: the cut removes nothing that
    still contributes, so the plain cut and the folded network agree exactly."""
    model = resolve_model("smallcnn-mnist5k", tiny_mnist).model
    context = _context(model, tiny_mnist)
    sep = make_criterion("sep")
    sep.search(model, context)
    before = evaluate(model, tiny_mnist.test_x, tiny_mnist.test_y, torch.device("cpu"))
    context.graph.prune(sep.select(context.graph, context.cost_model, context.budget))
    assert evaluate(model, tiny_mnist.test_x, tiny_mnist.test_y, torch.device("cpu")) == before


def test_training_time_methods_in_compare_and_their_bad_options(tmp_path, capsys):
    args = ["compare", "--methods", "pfam,sep,search-train,l1", "--target-macs", "0.5", "--seeds", "1",
            "--rounds", "1", "--epochs", "0.1", "--search-epochs", "0.2", "--train-subset", "256",
            "--test-subset", "128", "--quiet", "--device", "cpu", "--out", str(tmp_path / "cmp")]
    assert main(args) == 0
    table = (tmp_path / "cmp" / "table.md").read_text()
    assert all(f"`{m}`" in table for m in ("pfam", "sep", "search-train", "l1"))
    capsys.readouterr()
    assert main(["run", "--method", "search-train", "--allocation", "global", "--out", str(tmp_path / "x"),
                 *QUICK]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "chooses every layer's width itself" in err[0] and not (tmp_path / "x").exists()


def test_bayes_selector_takes_the_counts_of_a_learned_allocation():
    from bayesprune.decision.selector import BudgetedSelector

    class Fixed:  # stands in for LSTMAllocation: counts per group, whatever the scores
        def counts(self, cost_model, target, kind, cap, round_to=1):
            return np.array([1, 2])

    cost_model = _linear_cost([3, 3])
    selector = BudgetedSelector(cost_model, np.array([0, 0, 0, 1, 1, 1]), 5, "macs", 0.9, Fixed())
    kept, _ = selector.select(np.array([0.5, 0.1, 0.9, 0.3, 0.2, 0.8]))
    assert kept.tolist() == [True, False, True, False, False, True]  # group 0 loses 1, group 1 loses 2
