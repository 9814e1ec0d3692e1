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


class RecordsLayout(nn.Module):
    """Convolutions that remember whether each input came channels-last.

    The first one, 1x1, has a weight that is both contiguous and channels-last: evaluate
    must look at the second to tell the model's layout.
    """

    def __init__(self):
        super().__init__()
        self.pointwise = nn.Conv2d(3, 3, 1)
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.channels_last_inputs = []

    def forward(self, x):
        self.channels_last_inputs.append(x.is_contiguous(memory_format=torch.channels_last))
        return self.conv(self.pointwise(x)).mean(dim=(2, 3))


@pytest.mark.parametrize("channels_last", [False, True])
def test_evaluate_follows_the_models_memory_layout(channels_last):
    model = RecordsLayout()
    if channels_last:
        model.to(memory_format=torch.channels_last)
    x = torch.randn(6, 3, 4, 4)  # plain (N, C, H, W) batches, as Batches yields them
    batches = [(x[:4], torch.tensor([0, 1, 2, 0])), (x[4:], torch.tensor([1, 2]))]
    plain = evaluate(RecordsLayout(), batches, mixed_precision="fp32")
    result = evaluate(model, batches, mixed_precision="fp32")
    assert model.channels_last_inputs == [channels_last] * 2
    assert result.num_samples == plain.num_samples == 6


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")
def test_evaluate_moves_each_batch_to_the_models_device():
    logits = torch.tensor([[5.0, 0, 0], [0, 5.0, 0], [0, 0, 5.0]])
    model = FixedLogits().to("cuda")
    result = evaluate(model, [(logits, torch.tensor([0, 1, 1]))], mixed_precision="fp32")
    assert result.accuracy == pytest.approx(2 / 3) and result.predictions.device.type == "cpu"


def test_eval_mode_restores_each_module_s_own_mode():
    from torch import nn

    from course_utils.evaluation import eval_mode

    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2), nn.Dropout(0.5))
    model.train()
    model[1].eval()  # a batch-norm layer frozen on purpose, inside a model that trains
    with eval_mode(model):
        assert not any(module.training for module in model.modules())
    assert model.training and model[0].training and model[2].training
    assert not model[1].training, "the frozen batch norm must stay in eval mode"
