# expect: invalid: the limit is 64
import math
import torch
import torch.nn.functional as F


def activation(x):
    y = x
    for i in range(1000000):
        y = y + 1
    return y
