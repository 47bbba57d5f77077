# expect: invalid: torch.load
import math
import torch
import torch.nn.functional as F


def activation(x):
    return torch.load('pwned')
