# expect: invalid: forbidden
import math
import torch
import torch.nn.functional as F


def activation(x):
    return compile('1', 'f', 'eval')
