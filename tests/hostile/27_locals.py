# expect: invalid: not allowed
import math
import torch
import torch.nn.functional as F


def activation(x):
    return locals()['x']
