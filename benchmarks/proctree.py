"""Run a command and measure the memory of its whole process tree, not only of the command's process.

``servelab report`` builds some sections in a section worker (a second Python process) and encodes
figures in a forked figure worker, so the peak RSS of the report's own process (``ru_maxrss``,
GNU time's ``%M``: the largest single process) understates what the report holds. :func:`run`
samples ``/proc`` every ``interval`` seconds (0.1) while the command runs and returns, besides wall
and CPU time (the command and every descendant it waited for, from ``wait4``):

- ``peak_rss_mb``: the largest single process's peak (``ru_maxrss``, as before). Linux records
  the peak RSS of the process that ``exec`` replaces in ``ru_maxrss`` too, and ``subprocess``
  starts the command from a copy (or a ``vfork``) of the caller, so ``ru_maxrss`` is at least the
  caller's own peak: where it is not 32 MB above the caller's ``VmHWM`` at launch, the largest sampled
  peak is used instead (a caller holding 900 MB otherwise reports 900 MB for ``print('x')``);
- ``sum_peaks_mb``: the sum over the processes of the tree of each one's own peak: an upper
  bound of the tree's memory at any instant (the peaks need not coincide). A process started by
  ``exec`` counts its peak RSS (``VmHWM``, last value sampled while it lived, or the largest
  ``VmRSS`` sampled where that reads higher: the kernel updates ``VmHWM`` lazily); a process forked
  and not exec'd (its command line is its parent's: the report's figure worker) counts its
  largest private memory (``Private_Clean + Private_Dirty`` of ``smaps_rollup``), since the
  rest of its RSS is its parent's pages, shared copy-on-write and counted in the parent;
- ``sum_rss_peaks_mb``: the same with every process's peak RSS (shared pages of forks twice);
- ``tree_rss_mb`` / ``tree_pss_mb``: the largest sampled sum of the tree's current RSS / PSS
  (proportional set size: shared pages split between the processes sharing them; only with
  ``pss_every``): the tree's memory at one instant, a lower bound (a peak between two samples is missed);
- ``processes``: each process's peak RSS (MB), the start of its command line, whether it is the
  command's own process (``root``), and for a fork (``forked``) its largest private memory.

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


def tree_pids(root: int) -> dict[int, int | None]:
    """``root`` and every live descendant of it, each with its parent's pid (None for ``root``)
    (``/proc/<pid>/task/<tid>/children``; without that file, from the parent ids in every
    ``/proc/<pid>/stat``)."""
    if not Path(f"/proc/{root}/task").is_dir():
        return {root: None}
    if not Path(f"/proc/{root}/task/{root}/children").exists():
        return _tree_pids_by_stat(root)
    out: dict[int, int | None] = {root: None}
    stack = [root]
    while stack:
        pid = stack.pop()
        try:
            for task in os.listdir(f"/proc/{pid}/task"):
                for child in Path(f"/proc/{pid}/task/{task}/children").read_text().split():
                    out[int(child)] = pid
                    stack.append(int(child))
        except (OSError, ValueError):
            continue
    return out


def _tree_pids_by_stat(root: int) -> dict[int, int | None]:
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
    out: dict[int, int | None] = {root: None}
    stack = [root]
    while stack:
        pid = stack.pop()
        for child in children.get(pid, []):
            out[child] = pid
            stack.append(child)
    return out


_EXEC_MARGIN_KB = 32 * 1024


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


def _rollup_kb(pid: int, *keys: str) -> int:
    """The sum of ``keys`` (e.g. ``Pss``, ``Private_Dirty``) of ``/proc/<pid>/smaps_rollup``, kB (0 when gone)."""
    total = 0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.split(":")[0] in keys:
                total += int(line.split()[1])
    except (OSError, ValueError):
        return 0
    return total


def _pss_kb(pid: int) -> int:
    return _rollup_kb(pid, "Pss")


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:120].strip()
    except OSError:
        return "?"


def run(cmd: list[str], *, env: dict | None = None, cwd: str | Path | None = None, interval: float = 0.1,
        pss_every: int = 0, tail: int = 4000, timeout_s: float | None = None) -> dict:
    """Run ``cmd``; its exit code, times, memory of its process tree (see the module docstring), output tails.

    With ``timeout_s`` the command is killed once it has run that long (``timed_out`` in the
    result says so; ``rc`` is then the kill's).

    PSS is read every ``pss_every``-th sample only, and by default never (``tree_pss_mb`` is then
    0): reading ``smaps_rollup`` walks the whole address space of a process, holding its memory map
    lock (96 ms of CPU on a 1.8 GB process, against 0.5 ms for the tree and ``status``), which
    would slow the process measured.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=cwd)
        # read after Popen returns (the command has exec'd by then): bounds what exec carried over
        caller_hwm_kb = (_status_kb(os.getpid()) or (0, 0))[1]
        peaks: dict[int, int] = {}  # pid -> last VmHWM seen (kB)
        private: dict[int, int] = {}  # forked pid -> largest private memory seen (kB)
        names: dict[int, str] = {}
        tree = {"rss": 0, "pss": 0}
        done = threading.Event()

        def sample() -> None:
            k = 0
            while not done.is_set():
                rss = pss = 0
                with_pss = pss_every > 0 and k % pss_every == 0
                k += 1
                for pid, parent in tree_pids(proc.pid).items():
                    status = _status_kb(pid)
                    if status is None or status[1] == 0:  # gone, or a zombie
                        continue
                    rss += status[0]
                    pss += _pss_kb(pid) if with_pss else 0
                    # VmRSS can read above VmHWM: the kernel syncs the per-thread RSS counters into
                    # the high-water mark lazily (CI: a tree sum 6 MB above the sum of the peaks)
                    peaks[pid] = max(peaks.get(pid, 0), status[1], status[0])
                    if pid not in names:
                        names[pid] = _cmdline(pid)
                    if parent is not None and names[pid] == names.get(parent):  # forked, not exec'd
                        private[pid] = max(private.get(pid, 0), _rollup_kb(pid, "Private_Clean", "Private_Dirty"))
                tree["rss"], tree["pss"] = max(tree["rss"], rss), max(tree["pss"], pss)
                done.wait(interval)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        fired = threading.Event()

        def kill() -> None:
            fired.set()
            proc.kill()

        killer = threading.Timer(timeout_s, kill) if timeout_s is not None else None
        if killer is not None:
            killer.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        if killer is not None:
            killer.cancel()
        timed_out = fired.is_set()
        done.set()
        sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    processes = [{"pid": pid, "root": pid == proc.pid, "peak_mb": kb / 1024, "cmd": names.get(pid, "?"),
                  "forked": pid in private, "private_mb": private[pid] / 1024 if pid in private else None}
                 for pid, kb in peaks.items()]
    # ru_maxrss (wait4: the largest single process of the tree) above every sampled peak: that process grew
    # after its last sample; the growth is added to the sums. Not above the caller's own peak: it may be
    # the caller's, inherited through exec (module docstring), and the samples are used.
    sampled_mb = max((p["peak_mb"] for p in processes), default=0.0)
    # the margin: between fork and exec the child touches a few pages of its copy (seen: 0.2 MB over)
    peak_mb = usage.ru_maxrss / 1024 if usage.ru_maxrss > caller_hwm_kb + _EXEC_MARGIN_KB else sampled_mb
    unseen_mb = max(0.0, peak_mb - max((p["peak_mb"] for p in processes), default=0.0))
    return {"rc": proc.returncode, "timed_out": bool(timed_out), "elapsed_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime,
            "peak_rss_mb": peak_mb,
            "sum_peaks_mb": sum(p["private_mb"] if p["forked"] else p["peak_mb"] for p in processes) + unseen_mb,
            "sum_rss_peaks_mb": sum(p["peak_mb"] for p in processes) + unseen_mb,
            "tree_rss_mb": tree["rss"] / 1024, "tree_pss_mb": tree["pss"] / 1024, "processes": processes,
            "stdout": stdout[-tail:], "stderr": stderr[-tail:]}
