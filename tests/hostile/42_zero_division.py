# expect: nonfinite: not finite
import math
import torch
import torch.nn.functional as F


def activation(x):
    return x / (x - x)
