# expect: invalid: declares the encoding 'utf-7'
# coding: utf-7
import torch


def activation(x):
    # In UTF-7 the sequence below is a newline: Python would run sin, not the tanh.
    #+AAo-    return torch.sin(x)
    return torch.tanh(x)
