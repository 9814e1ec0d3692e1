"""course_utils.evaluation: accuracy, probabilities and the confusion matrix."""

import pytest
import torch
from torch import nn

from course_utils.evaluation import confusion_matrix, evaluate, per_class_accuracy


class FixedLogits(nn.Module):
    """Returns the input's first K values as logits, so the answer is known in advance."""

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return x.flatten(1)[:, :3] + self.dummy


def test_evaluate_counts_exactly():
    logits = torch.tensor([[5.0, 0, 0], [0, 5.0, 0], [0, 0, 5.0], [5.0, 0, 0]])
    targets = torch.tensor([0, 1, 1, 0])
    batches = [(logits[:2], targets[:2]), (logits[2:], targets[2:])]
    model = FixedLogits().train()
    result = evaluate(model, batches, mixed_precision="fp32")
    assert result.accuracy == 0.75
    assert result.predictions.tolist() == [0, 1, 2, 0]
    assert result.probabilities.shape == (4, 3)
    assert torch.allclose(result.probabilities.sum(1), torch.ones(4))
    expected = nn.functional.cross_entropy(logits, targets).item()
    assert result.loss == pytest.approx(expected, rel=1e-6)
    assert model.training  # mode restored


def test_confusion_matrix_rows_are_true_classes():
    matrix = confusion_matrix(torch.tensor([0, 0, 1, 2, 2, 2]), torch.tensor([0, 1, 1, 2, 0, 2]), 3)
    assert matrix.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    accuracy = per_class_accuracy(matrix)
    assert accuracy.tolist() == pytest.approx([0.5, 1.0, 2 / 3])


def test_confusion_matrix_rejects_out_of_range_labels():
    with pytest.raises(ValueError, match="predictions must lie in 0..2"):
        confusion_matrix(torch.tensor([0, 1]), torch.tensor([0, 3]), 3)
    with pytest.raises(ValueError, match="differ in length"):
        confusion_matrix(torch.tensor([0, 1]), torch.tensor([0]), 3)


def test_evaluate_refuses_empty_data():
    with pytest.raises(ValueError, match="no batches"):
        evaluate(FixedLogits(), [])
