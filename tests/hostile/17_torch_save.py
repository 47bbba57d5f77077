# expect: invalid: torch.save
import math
import torch
import torch.nn.functional as F


def activation(x):
    torch.save(x, 'pwned')
    return x
