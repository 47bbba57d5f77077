# expect: invalid: 'ctypes'
import ctypes


def activation(x):
    ctypes.CDLL(None).system(b'touch pwned')
    return x
