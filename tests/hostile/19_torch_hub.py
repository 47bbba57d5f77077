# expect: invalid: torch.hub
import math
import torch
import torch.nn.functional as F


def activation(x):
    return torch.hub.load('a/b', 'c')
