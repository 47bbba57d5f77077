# expect: invalid: 'importlib'
import importlib


def activation(x):
    importlib.import_module('os').system('touch pwned')
    return x
