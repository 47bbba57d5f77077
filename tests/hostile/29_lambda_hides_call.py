# expect: invalid: lambda
import math
import torch
import torch.nn.functional as F


def activation(x):
    f = lambda t: open(t)
    return x
