# expect: invalid: torch.utils
import math
import torch
import torch.nn.functional as F


def activation(x):
    return torch.utils.data.default_collate([x])
