"""The variation detector's score: how much the teacher's evidence for an image's given label drops from the
source image to its variation(s).

``score = log p(y | source) − mean_k log p(y | variation_k)``, with ``y`` the label the (poisoned) training set
gives the image and ``p`` the teacher's softmax. On a poisoned image the trigger makes the teacher sure of ``y``
(the target) on the source, while the variation, without the trigger, shows the true class: ``p(y | variation)``
is tiny and the score large. On a clean image both agree and the score is near 0.

Why log-probabilities: the teacher is near-certain on its training sources, so the information lies in how
small ``p(y | variation)`` is (10⁻² or 10⁻⁶); a difference of probabilities saturates at 1 and ranks those alike.
The mean over variations is the log of their geometric mean: every variation counts, and one variation that
happens to keep the trigger does not hide the others.
"""

from __future__ import annotations

import numpy as np
import torch


def label_log_probs(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``log softmax(logits)[..., y]`` for logits of shape (N, C) or (N, K, C) and labels (N,)."""
    log_probs = torch.log_softmax(logits.double(), dim=-1)
    if log_probs.ndim == 2:
        return log_probs.gather(1, labels[:, None])[:, 0]
    index = labels[:, None, None].expand(-1, log_probs.shape[1], 1)
    return log_probs.gather(2, index)[..., 0]


def evidence_drop(source_logits: torch.Tensor, variation_logits: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """The score per image (higher = more suspect): source logits (N, C), variation logits (N, K, C)."""
    source = label_log_probs(source_logits, labels)
    variations = label_log_probs(variation_logits, labels).mean(dim=1)
    return (source - variations).numpy()


def prediction_on_variations(variation_logits: torch.Tensor) -> np.ndarray:
    """The teacher's class for an image from its variations: the argmax of the mean probability over them."""
    return torch.softmax(variation_logits.double(), dim=-1).mean(dim=1).argmax(dim=1).numpy()
