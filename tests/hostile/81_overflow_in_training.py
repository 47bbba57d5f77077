# expect: nonfinite: loss is
import torch.nn.functional as F


# Finite at every probe point (about 6.9e29), so it is admitted; the network's output and its
# squared error overflow float32 in training: a failed result with its reason, not a crash.
def activation(x):
    return F.softplus(x, beta=1e-30)
