# expect: ok: 
import math
import torch
import torch.nn.functional as F


# tanh inside the probe range [-10, 10], something else beyond it, where pre-activations
# also go in training: probed out to |x| = 64, it hashes apart from tanh.
def activation(x):
    return torch.where(torch.abs(x) > 10, 0.5 * torch.tanh(x), torch.tanh(x))
