"""Run directories: run.json and the append-only events.jsonl (rundir), the history they
hold (history), the ranking document (ranking) and finding runs and candidates (catalog).
"""
