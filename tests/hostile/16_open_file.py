# expect: invalid: not allowed
import math
import torch
import torch.nn.functional as F


def activation(x):
    open('pwned', 'w').write('x')
    return x
