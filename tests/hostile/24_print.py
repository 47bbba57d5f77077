# expect: invalid: forbidden
import math
import torch
import torch.nn.functional as F


def activation(x):
    print(x)
    return x
