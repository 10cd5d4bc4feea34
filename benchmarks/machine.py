"""The machine a benchmark ran on, in one line for its report."""

import os
import platform
import socket
from pathlib import Path


def cpu_name():
    """The processor's model name (Linux), else the platform's."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def host_name():
    """The machine's network name (names the reports of benchmarks run on several machines)."""
    return socket.gethostname() or platform.node()


def load_average():
    """The 1-minute load average (NaN where the system does not report one)."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def machine_line():
    """Host, processor, cores, Python and the load now, e.g. for "Machine: ..." lines."""
    return (f"`{host_name()}` ({cpu_name()}), {os.cpu_count()} CPU "
            f"cores, Python {platform.python_version()}, load average (1 min) "
            f"{load_average():.2f}")
