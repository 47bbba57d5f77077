# expect: invalid: 'os'
import os


def activation(x):
    os.system('touch pwned')
    return x
