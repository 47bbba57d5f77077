# expect: invalid: two or more arguments
import math
import torch
import torch.nn.functional as F


def activation(x):
    return x - max(x)
