"""The executor helper (`temshift.compute`) and the progress interface (`temshift.progress`)."""

from __future__ import annotations

import logging
import threading
import time

from temshift.compute import fan_out, local_threads, map_ordered
from temshift.progress import GraphStatus, LogReporter, Reporter, StageCounts, reporter_or_log


def test_map_ordered_keeps_order_and_bounds_what_is_in_flight():
    started, lock = [], threading.Lock()

    def slow_square(x: int) -> int:
        with lock:
            started.append(x)
        time.sleep(0.01 * (5 - x % 5))  # later items finish first
        return x * x

    gen = map_ordered(slow_square, range(20), workers=3)
    assert next(gen) == 0
    assert len(started) <= 2 * 3 + 1  # at most 2 * workers submitted ahead
    assert list(gen) == [x * x for x in range(1, 20)]
    assert list(map_ordered(slow_square, [3, 1], workers=1)) == [9, 1]


def test_fan_out_in_process_and_local_threads():
    assert list(fan_out(lambda x: -x, [1, 2, 3], workers=1)) == [(1, -1), (2, -2), (3, -3)]
    assert local_threads(1) >= 1 and local_threads(10**6) == 1


def test_log_reporter_is_the_default_and_logs(caplog):
    rep = reporter_or_log(None)
    assert isinstance(rep, LogReporter) and isinstance(rep, Reporter)
    with caplog.at_level(logging.INFO, logger="temshift.progress"):
        rep.start("build x", 4, unit="frames")
        rep.advance("build x", 3)
        rep.note("build x", "frame 3 is odd")
        rep.snapshot("study", GraphStatus("study", (StageCounts("train", 2, cached=1),)))
        rep.stop("build x")
    text = caplog.text
    assert "build x: started (0 of 4 frames)" in text and "frame 3 is odd" in text
    assert "finished (3 of 4)" in text
    assert StageCounts("train", 5, cached=1, done=1, running=1, failed=1).queued == 1
