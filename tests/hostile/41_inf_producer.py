# expect: nonfinite: float32
import math
import torch
import torch.nn.functional as F


def activation(x):
    return torch.exp(x * x)
