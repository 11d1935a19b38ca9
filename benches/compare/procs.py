"""What a server process tree costs, read from /proc: CPU time, PSS, peak RSS.

A server is its main process and every descendant (nginx has a master and
workers; distpoint is one process with threads, whose times /proc/PID/stat
already sums, including threads that have exited). The machine-wide counters
of /proc/stat give how much CPU *other* processes used during a run: the noise
figure every sample carries.
"""
import os
import resource

TICK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid):
    """Fields of /proc/PID/stat after the command name (which may hold spaces)."""
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    return text[text.rindex(")") + 2:].split()


def tree(pid):
    """pid and all its living descendants."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            ppid = int(_stat_fields(entry)[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_seconds(pid):
    """User + system CPU of the tree rooted at pid, in seconds."""
    total = 0
    for p in tree(pid):
        try:
            f = _stat_fields(p)
        except OSError:
            continue  # exited between the listing and the read
        # Fields 14 and 15 of stat(5) (utime, stime); index 11 and 12 after the name.
        total += int(f[11]) + int(f[12])
    return total / TICK


def _kib_field(path, name):
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(name + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def pss_mib(pid):
    """Proportional set size of the tree (shared pages split between sharers), MiB."""
    return sum(_kib_field(f"/proc/{p}/smaps_rollup", "Pss") for p in tree(pid)) / 1024


def rss_mib(pid):
    """Sum of each process's current RSS, MiB."""
    return sum(_kib_field(f"/proc/{p}/status", "VmRSS") for p in tree(pid)) / 1024


def rss_peak_mib(pid):
    """Sum of each process's peak RSS (VmHWM) since the last reset, MiB."""
    return sum(_kib_field(f"/proc/{p}/status", "VmHWM") for p in tree(pid)) / 1024


def reset_rss_peak(pid):
    """Make VmHWM start again from the current RSS (clear_refs 5, proc(5))."""
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            pass


def machine_busy_seconds():
    """CPU-seconds all processes ran (user, nice, system, steal) since boot."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, steal = v[0], v[1], v[2], v[7]
    return (user + nice + system + steal) / TICK


def children_cpu_seconds():
    """CPU of this process's waited-for children (the load generators) so far."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def own_cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
