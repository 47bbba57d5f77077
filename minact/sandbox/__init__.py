"""The sandbox: everything that imports torch or runs candidate code.

The main process talks to it only through `process.WorkerProcess`, a handle on a separate
interpreter (`python -m minact.sandbox.worker`) started with a scrubbed environment, a
memory cap and a deadline per request. Inside that worker, `loader` turns normalised
source into a callable, `admission` probes it (pointwise and finiteness checks through
`probe`, `cost` counted and timed, the behaviour hash of `fingerprint`), `trainer` trains it
in batched tiny networks with `adam` and records a `trace` of its pre-activations, and
`verify` checks another code against such a trace before it may reuse the result. Nothing
outside this package imports torch (an import-linter contract in pyproject.toml checks it),
and importing this package itself loads nothing heavy.
"""
