# expect: invalid: torch.empty
import math
import torch
import torch.nn.functional as F


def activation(x):
    return torch.empty(10 ** 12)
