# expect: invalid: 'os'
import math
import torch
import torch.nn.functional as F


def activation(x):
    import os
    return x
