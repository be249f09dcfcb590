"""Peak resident memory of this process and its children (joblib workers), sampled in a thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import psutil


class TreeRSS:
    """Samples the summed RSS of this process and all its descendants every ``interval`` s.

    ``peak`` is the largest sum seen; ``on_sample(rss_bytes)`` (optional) is called each time.
    """

    def __init__(self, interval: float = 0.5, on_sample: Callable[[int], None] | None = None):
        self.interval, self.on_sample = interval, on_sample
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def sample(self) -> int:
        me = psutil.Process()
        total = 0
        for proc in [me, *me.children(recursive=True)]:
            try:
                total += proc.memory_info().rss
            except psutil.Error:
                pass
        self.peak = max(self.peak, total)
        return total

    def _loop(self) -> None:
        while not self._stop.is_set():
            rss = self.sample()
            if self.on_sample is not None:
                self.on_sample(rss)
            self._stop.wait(self.interval)

    def __enter__(self) -> TreeRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


def now() -> float:
    return time.perf_counter()
