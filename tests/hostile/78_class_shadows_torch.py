# expect: invalid: rename the class
import math
import torch
import torch.nn.functional as F


class torch:
    tanh = abs


def activation(x):
    return torch.tanh(x)
