"""The search: one asyncio loop (loop) that asks proposers (an LLM client over httpx, the
offline mutator, a replay) for candidates, validates them, has them scored through an
Evaluator protocol, and keeps the population. It never imports the evaluator's
implementation or torch.
"""
