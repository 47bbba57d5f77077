# expect: invalid: assign to one plain name
import math
import torch
import torch.nn.functional as F


def activation(x):
    globals()['torch'] = None
    return x
