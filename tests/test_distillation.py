"""Distillation from the unpruned network (--distill) against hand-computable cases."""
import torch
from torch import nn

from bayesprune.cli import main
from bayesprune.distillation import distillation_loss


def test_a_student_equal_to_its_teacher_pays_only_the_cross_entropy_share():
    torch.manual_seed(0)
    teacher = nn.Linear(3, 4)
    student = nn.Linear(3, 4)
    student.load_state_dict(teacher.state_dict())
    x, y = torch.randn(8, 3), torch.randint(0, 4, (8,))
    ce = nn.functional.cross_entropy(student(x), y)
    loss = distillation_loss(teacher, alpha=0.25, temperature=3.0)(student, x, y)
    assert torch.allclose(loss, 0.75 * ce)  # KL(p || p) = 0
    assert not any(p.requires_grad for p in teacher.parameters())  # the teacher is not trained
    with torch.no_grad():
        student.weight.add_(torch.randn(4, 3))  # a uniform shift of every logit would change nothing
    assert distillation_loss(teacher, 0.25, 3.0)(student, x, y) > 0.75 * nn.functional.cross_entropy(student(x), y)


def test_distill_option_runs_and_refuses_from_scratch(tmp_path, capsys):
    quick = ["--train-subset", "256", "--test-subset", "128", "--epochs", "0.2", "--quiet", "--no-report",
             "--criterion", "l2", "--rounds", "1"]
    assert main(["run", *quick, "--distill", "0.5", "--out", str(tmp_path / "kd")]) == 0
    assert main(["run", *quick, "--distill", "0.5", "--from-scratch", "--out", str(tmp_path / "x")]) == 2
    assert "--from-scratch re-initialises" in capsys.readouterr().err
    assert main(["run", *quick, "--distill", "1.5", "--out", str(tmp_path / "y")]) == 2
