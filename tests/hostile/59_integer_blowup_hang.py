# expect: invalid: may exceed 1e18
import math
import torch
import torch.nn.functional as F


def activation(x):
    n = 10 ** 8
    return x * 10 ** n
