# expect: invalid: '_'
import math
import torch
import torch.nn.functional as F


def activation(x):
    return x.__class__(x)
