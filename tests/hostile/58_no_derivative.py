# expect: error: f'(x)
import math
import torch
import torch.nn.functional as F


def activation(x):
    return torch.heaviside(x, torch.zeros_like(x))
