# expect: bad_output: in place
import math
import torch
import torch.nn.functional as F


def activation(x):
    return F.relu(x, True)
