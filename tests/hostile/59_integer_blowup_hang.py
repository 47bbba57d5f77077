# expect: timeout: probing
import math
import torch
import torch.nn.functional as F


def activation(x):
    n = 10 ** 8
    return x * 10 ** n
