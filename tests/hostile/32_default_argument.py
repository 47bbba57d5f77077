# expect: invalid: exactly one argument
import math
import torch
import torch.nn.functional as F


def activation(x, y=open('pwned', 'w')):
    return x
