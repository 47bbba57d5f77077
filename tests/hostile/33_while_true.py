# expect: invalid: while loop
import math
import torch
import torch.nn.functional as F


def activation(x):
    while True:
        pass
    return x
