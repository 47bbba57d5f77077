"""The built-in activations a run starts from: scored in slices, so that the wait shows.

On a fresh cache the 14 built-ins train before anything else can be ranked (minutes on a
CPU). Scoring them one slice at a time (as many as the evaluator trains at once) lets a
progress display say "scoring 14 built-in activations: 3/14". The scores, and their order
(the reference first, then the seeds' order), are those of one call for all of them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Sequence

from minact.candidate import Candidate
from minact.score import Score
from minact.search.config import Evaluator

__all__ = ["score_seeds"]


async def score_seeds(
    evaluator: Evaluator,
    seeds: Sequence[Candidate],
    executor: concurrent.futures.Executor,
    shown: Callable[[int, int], None],
) -> list[Score]:
    """Returns the scores of `seeds`, calling `shown(done, total)` as slices finish."""
    loop = asyncio.get_running_loop()
    got: dict[str, Score] = {}
    reference: str | None = None
    done = 0
    shown(0, len(seeds))
    while done < len(seeds):
        # Asked each time: the evaluator knows its device (and batch) once a worker started.
        chunk = list(seeds[done : done + max(1, evaluator.preferred_batch())])
        scores = await loop.run_in_executor(executor, evaluator.score, chunk)
        reference = reference or (scores[0].code_hash if scores else None)
        mine = {c.code_hash for c in chunk}
        got.update((s.code_hash, s) for s in scores if s.code_hash in mine)
        done += len(chunk)
        shown(done, len(seeds))
    first = [got[reference]] if reference in got else []
    return first + [s for h, s in got.items() if h != reference]
