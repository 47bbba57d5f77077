# expect: invalid: calling `getattr` is forbidden
import math
import torch
import torch.nn.functional as F


def activation(x):
    return getattr(torch, 'sa' + 've')(x, 'pwned')
