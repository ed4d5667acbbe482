"""Run a command and measure the memory of its whole process tree, not only of the command's process.

``servelab report`` builds some sections in a section worker (a second Python process) and encodes
figures in a forked figure worker, so the peak RSS of the report's own process (``ru_maxrss``,
GNU time's ``%M``: the largest single process) understates what the report holds. :func:`run`
samples ``/proc`` every ``interval`` seconds (0.1) while the command runs and returns, besides wall
and CPU time (the command and every descendant it waited for, from ``wait4``):

- ``peak_rss_mb``: the largest single process's peak (``ru_maxrss``, as before);
- ``sum_peaks_mb``: the sum over the processes of the tree of each one's own peak (``VmHWM``,
  last value sampled while it lived): an upper bound of the tree's memory at any instant (the
  peaks need not coincide; pages a forked worker shares with its parent count twice);
- ``tree_rss_mb`` / ``tree_pss_mb``: the largest sampled sum of the tree's current RSS / PSS
  (proportional set size: shared pages split between the processes sharing them; only with
  ``pss_every``): the tree's memory at one instant, a lower bound (a peak between two samples is missed);
- ``processes``: each process's peak (MB), the start of its command line, and whether it is the
  command's own process (``root``; a forked child has its parent's command line).

A process's ``VmHWM`` is only seen while it lives, so growth in its last ``interval`` seconds is
missed, except for the largest process (``ru_maxrss``). It measures, asserts nothing.
"""
from __future__ import annotations

import os
import subprocess
import tempfile
import threading
import time
from pathlib import Path

__all__ = ["run", "tree_pids"]


def tree_pids(root: int) -> list[int]:
    """``root`` and every live descendant of it (``/proc/<pid>/task/<tid>/children``; without that
    file, from the parent ids in every ``/proc/<pid>/stat``)."""
    if not Path(f"/proc/{root}/task").is_dir():
        return [root]
    if not Path(f"/proc/{root}/task/{root}/children").exists():
        return _tree_pids_by_stat(root)
    out, stack = [], [root]
    while stack:
        pid = stack.pop()
        out.append(pid)
        try:
            for task in os.listdir(f"/proc/{pid}/task"):
                stack.extend(int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split())
        except (OSError, ValueError):
            continue
    return out


def _tree_pids_by_stat(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/stat").read_text()
            ppid = int(text[text.rfind(")") + 2:].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, stack = [], [root]
    while stack:
        pid = stack.pop()
        out.append(pid)
        stack.extend(children.get(pid, []))
    return out


def _status_kb(pid: int) -> tuple[int, int] | None:
    """(VmRSS, VmHWM) of ``pid`` in kB, None when it is gone."""
    try:
        rss = hwm = 0
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
        return rss, hwm
    except (OSError, ValueError):
        return None


def _pss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:120].strip()
    except OSError:
        return "?"


def run(cmd: list[str], *, env: dict | None = None, cwd: str | Path | None = None, interval: float = 0.1,
        pss_every: int = 0, tail: int = 4000) -> dict:
    """Run ``cmd``; its exit code, times, memory of its process tree (see the module docstring), output tails.

    PSS is read every ``pss_every``-th sample only, and by default never (``tree_pss_mb`` is then
    0): reading ``smaps_rollup`` walks the whole address space of a process, holding its memory map
    lock (96 ms of CPU on a 1.8 GB process, against 0.5 ms for the tree and ``status``), which
    would slow the process measured.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=cwd)
        peaks: dict[int, int] = {}  # pid -> last VmHWM seen (kB)
        names: dict[int, str] = {}
        tree = {"rss": 0, "pss": 0}
        done = threading.Event()

        def sample() -> None:
            k = 0
            while not done.is_set():
                rss = pss = 0
                with_pss = pss_every > 0 and k % pss_every == 0
                k += 1
                for pid in tree_pids(proc.pid):
                    status = _status_kb(pid)
                    if status is None or status[1] == 0:  # gone, or a zombie
                        continue
                    rss += status[0]
                    pss += _pss_kb(pid) if with_pss else 0
                    peaks[pid] = max(peaks.get(pid, 0), status[1])
                    if pid not in names:
                        names[pid] = _cmdline(pid)
                tree["rss"], tree["pss"] = max(tree["rss"], rss), max(tree["pss"], pss)
                done.wait(interval)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        done.set()
        sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    peak_mb = usage.ru_maxrss / 1024
    processes = [{"pid": pid, "root": pid == proc.pid, "peak_mb": kb / 1024, "cmd": names.get(pid, "?")}
                 for pid, kb in peaks.items()]
    # ru_maxrss (wait4: the largest single process of the tree) above every sampled peak: that process grew
    # after its last sample; the growth is added to the sum
    unseen_mb = max(0.0, peak_mb - max((p["peak_mb"] for p in processes), default=0.0))
    return {"rc": proc.returncode, "elapsed_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime,
            "peak_rss_mb": peak_mb, "sum_peaks_mb": sum(p["peak_mb"] for p in processes) + unseen_mb,
            "tree_rss_mb": tree["rss"] / 1024, "tree_pss_mb": tree["pss"] / 1024, "processes": processes,
            "stdout": stdout[-tail:], "stderr": stderr[-tail:]}
