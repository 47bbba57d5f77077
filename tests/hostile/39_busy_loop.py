# expect: too_costly: GELU
import math
import torch
import torch.nn.functional as F


def activation(x):
    y = x
    for i in range(64):
        y = torch.sin(y) + 0.001 * x
    return y
