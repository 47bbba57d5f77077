# expect: invalid: not allowed
import math
import torch
import torch.nn.functional as F


def activation(x):
    __import__('os').system('touch pwned')
    return x
