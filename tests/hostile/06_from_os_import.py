# expect: invalid: 'os'
from os import system


def activation(x):
    system('touch pwned')
    return x
