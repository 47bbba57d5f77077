"""The evaluation cascade of a search: stage 1 on part of the lab, the rest only if it can pay.

Each proposal gets a bar when it is built (right after a fixed earlier outcome has been
applied, so the bar never depends on timing): the run's K-th best fitness so far plus the
lab's margin, or none while fewer than K candidates have a fitness. Its candidate first
trains on the stage-1 tasks (minact.lab.cascade.stage_tasks); if its fitness there is
above the bar, it is *screened*: its outcome is a Score with status "screened", its
per-task scores on those tasks and its `partial_fitness`, and no fitness. Otherwise it
trains on the other tasks too (the stage-1 results come from the cache) and gets its
full Score. A candidate that fails in stage 1 fails: the lab holds the task it failed on.

Bars only fall as the run goes on (the K-th best can only improve), so of two copies of
one code in a batch the earlier proposal has the higher bar; the batch goes on with the
code when any copy's bar lets it, which is the earlier copy's decision, and the later
copy is a duplicate whatever its score.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from minact.candidate import Candidate, Hash
from minact.lab.cascade import Cascade, stage_tasks
from minact.lab.task import Lab, Task
from minact.score import Score
from minact.search.config import Evaluator
from minact.search.population import Population

__all__ = ["Screen"]


class Screen:
    """Scores a search's candidates: through the cascade when there is one, else in full.

    The built-in seeds, `minact score` and `minact rescore` never come here: they are
    always scored in full.
    """

    def __init__(
        self,
        full: Evaluator,
        stage: Evaluator | None = None,
        cascade: Cascade | None = None,
        lab_tasks: int = 0,
    ) -> None:
        """`full` scores on the whole lab (`lab_tasks` tasks), `stage` on the stage-1 tasks
        of `cascade`, through the same cache; without both, every candidate is scored in full."""
        self.full, self.stage, self.cascade = full, stage, cascade
        self.lab_tasks = lab_tasks
        self.bars: dict[int, float | None] = {}  # by proposal index

    @classmethod
    def of_lab(
        cls, full: Evaluator, lab: Lab, on_tasks: Callable[[Sequence[Task]], Evaluator]
    ) -> Screen:
        """Returns how a search on `lab` scores its candidates: through the lab's cascade, its
        stage 1 by the evaluator `on_tasks` gives for the stage-1 tasks; without one, in full."""
        c = lab.cascade
        if c is None:
            return cls(full)
        return cls(full, on_tasks(stage_tasks(lab.tasks, c.tasks, c.seed)), c, len(lab.tasks))

    def note(self, index: int, population: Population) -> None:
        """Sets proposal `index`'s bar from the population it is built from."""
        if self.cascade is not None:
            self.bars[index] = self.bar(population, self.cascade)

    @staticmethod
    def bar(population: Population, cascade: Cascade) -> float | None:
        """Returns the stage-1 fitness above which a candidate is screened out (None: none is)."""
        ranked = population.ranked()
        if len(ranked) < cascade.top:
            return None
        kth = ranked[cascade.top - 1].score.fitness
        return None if kth is None else kth + cascade.margin

    def score(self, candidates: Sequence[Candidate], indices: Sequence[int]) -> list[Score]:
        """Returns a Score for each distinct candidate (of proposals `indices`): full, failed
        in stage 1, or screened."""
        if self.stage is None or self.cascade is None:
            return self.full.score(candidates)
        # The highest bar of a code's copies (None: no bar) decides for all of them.
        highest: dict[Hash, float | None] = {}
        for c, k in zip(candidates, indices, strict=True):
            b = self.bars.get(k)
            old = highest.get(c.code_hash, b)
            highest[c.code_hash] = None if old is None or b is None else max(old, b)
        unique = {c.code_hash: c for c in candidates}
        staged = [c for h, c in unique.items() if highest[h] is not None]
        out: dict[Hash, Score] = {}
        passed: dict[Hash, Score] = {}  # stage-1 scores of the candidates that go on
        if staged:
            by_code = {s.code_hash: s for s in self.stage.score(staged)}
            for c in staged:
                s, b = by_code[c.code_hash], highest[c.code_hash]
                assert b is not None
                if not s.ok:
                    out[c.code_hash] = s  # a failure on a task of the lab is the lab's verdict
                elif s.fitness is not None and s.fitness > b:
                    out[c.code_hash] = self._screened(s, b)
                else:
                    passed[c.code_hash] = s
        rest = [c for h, c in unique.items() if h not in out]
        if rest:
            by_code = {s.code_hash: s for s in self.full.score(rest)}
            out |= {
                c.code_hash: _went_on(by_code[c.code_hash], passed.get(c.code_hash)) for c in rest
            }
        return [out[h] for h in unique]

    def _screened(self, s: Score, bar: float) -> Score:
        c = self.cascade
        assert s.fitness is not None and c is not None
        reason = (
            f"screened after stage 1: fitness {s.fitness:.4f} on {c.tasks} of {self.lab_tasks} "
            f"tasks, above {bar:.4f} (the run's #{c.top} fitness {bar - c.margin:.4f} "
            f"+ margin {c.margin:g})"
        )
        return replace(
            s,
            status="screened",
            reason=reason,
            fitness=None,
            fitness_spread=None,
            mean_ood_mse=None,
            partial_fitness=s.fitness,
        )


def _went_on(full: Score, stage: Score | None) -> Score:
    """Returns the full Score of a candidate that passed stage 1 (`stage`: its stage-1
    Score; None: it had no bar) counting what it trained in stage 1 as trained, not cached."""
    # The full evaluation reads the stage-1 results back from the cache: without this, a
    # candidate that trained every task in this run would show as partly cached.
    if stage is None or stage.cached_tasks is None or full.cached_tasks is None:
        return full
    trained = len(stage.tasks) - stage.cached_tasks
    cached_tasks = max(0, full.cached_tasks - trained)
    return replace(full, cached=full.cached and stage.cached, cached_tasks=cached_tasks)
