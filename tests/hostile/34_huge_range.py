# expect: invalid: range() bounds
import math
import torch
import torch.nn.functional as F


def activation(x):
    y = x
    for i in range(10 ** 9):
        y = y + 1
    return y
