# expect: invalid: indexing
import math
import torch
import torch.nn.functional as F


def activation(x):
    return x[..., None] * x
