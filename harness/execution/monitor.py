"""What a case watches while its learner runs: its deadline, progress, convergence curves.

Learners run their compiled step loop in chunks and call :meth:`Monitor.after_chunk` between
chunks (the same executable serves every chunk, so this costs no compilation). The checks are
cooperative: a timeout, or a stop signal that a library swallowed, is noticed at the next chunk
boundary (at most ``CHUNK`` steps late).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from harness.execution import interrupts


class CaseTimeout(TimeoutError):
    """The case ran past its ``timeout_s``."""


@dataclass
class Monitor:
    case_id: str = ""
    timeout_s: float | None = None
    progress: bool | Callable[[str], None] = False  # True: print to stderr; or a function taking the text
    eval_every: int | None = None
    evaluate: Callable | None = None  # (z, theta) -> {metric: value}
    history: list[tuple[int, dict]] = field(default_factory=list)
    eval_s: float = 0.0
    start: float = field(default_factory=time.perf_counter)
    _last_print: float = 0.0

    def check(self, where: str) -> None:
        """Raise if the session was stopped (a stop signal that a library swallowed, see
        ``harness.execution.interrupts``) or the case is past its deadline."""
        interrupts.raise_if_stopped()
        if self.timeout_s is not None and time.perf_counter() - self.start > self.timeout_s:
            raise CaseTimeout(
                f"{self.case_id} ran past its timeout_s = {self.timeout_s:g} s ({where}, "
                f"{time.perf_counter() - self.start:.1f} s elapsed)"
            )

    def after_chunk(self, done: int, total: int, params: Callable[[], tuple]) -> None:
        """Called by a learner after each chunk with a way to read its current particles."""
        if self.eval_every and self.evaluate is not None and done % self.eval_every == 0:
            t = time.perf_counter()
            self.history.append((done, self.evaluate(*params())))
            self.eval_s += time.perf_counter() - t
        if self.progress:
            self._print_progress(done, total)
        self.check(f"at step {done} of {total}")

    def _print_progress(self, done: int, total: int) -> None:
        now = time.perf_counter()
        if done < total and now - self._last_print < 2.0:
            return
        self._last_print = now
        rate = done / max(now - self.start, 1e-9)
        text = f"\r{self.case_id}: step {done}/{total} ({rate:.0f} steps/s)" + ("\n" if done >= total else "")
        if callable(self.progress):
            self.progress(text)
        else:
            sys.stderr.write(text)
            sys.stderr.flush()
