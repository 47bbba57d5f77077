# expect: invalid: not allowed
import math
import torch
import torch.nn.functional as F


def activation(x):
    return ().__class__.__bases__[0].__subclasses__()
