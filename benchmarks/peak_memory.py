"""The code a benchmark's measured process starts with: a thread that samples the process's
anonymous resident memory (``RssAnon``: its own memory, not the page cache a mapped file lives
in) every 5 ms into ``peak[0]`` (KiB), until ``stop`` is set; ``anon_kib()`` reads it now.

A benchmark runs ``python -c PEAK_SAMPLER + <its arm's code>`` in a fresh process."""

PEAK_SAMPLER = r"""
import json, sys, threading, time
import numpy as np, torch
from pathlib import Path

def anon_kib():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    return 0

peak = [anon_kib()]
stop = threading.Event()
def sample():
    while not stop.is_set():
        peak[0] = max(peak[0], anon_kib()); time.sleep(0.005)
threading.Thread(target=sample, daemon=True).start()
"""
