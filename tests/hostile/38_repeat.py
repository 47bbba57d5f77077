# expect: invalid: repeat
import math
import torch
import torch.nn.functional as F


def activation(x):
    return x.repeat(1000000, 1)
