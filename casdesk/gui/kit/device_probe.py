"""The compute devices, listed by a child process (no Qt here: this module is what the child
runs).

Listing GPUs needs torch and, for their names and memory, CUDA's initialisation: seconds,
much of it holding Python's GIL in whichever thread does it, and memory the window need not
carry until it trains. A child process does it instead (``python -c`` here, the frozen
executable with :data:`PROBE_FLAG` in a frozen build) and writes ``[[key, label], ...]`` as
JSON to a file (the windowed executable has no stdout).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

PROBE_FLAG = "--probe-devices"
"""``casdesk-gui --probe-devices FILE``: write the device list to FILE and exit (frozen builds)."""


def list_devices() -> list[tuple[str, str]]:
    """(key, label) of each device torch can use here, best first, e.g.
    ``("cuda:0", "cuda:0 NVIDIA H100 (80 GB)")``; imports torch."""
    import torch

    from casdesk.ml.device import available_devices

    out = []
    for name in available_devices():
        if name.startswith("cuda"):
            props = torch.cuda.get_device_properties(int(name.split(":")[1]))
            out.append((name, f"{name} {props.name} ({props.total_memory / 2**30:.0f} GB)"))
        else:
            out.append((name, name))
    return out


def probe_main(out_file: str, nice: bool = True) -> int:
    """The child's work: list the devices into ``out_file`` (written whole, or not at all);
    ``nice``: at a lower priority than the window's process."""
    if nice:
        try:
            os.nice(10)
        except (OSError, AttributeError):
            pass
    out = Path(out_file)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(list_devices()))
    os.replace(tmp, out)
    return 0


def probe_command(out_file: str) -> tuple[str, list[str], dict[str, str]]:
    """(program, arguments, extra environment) of the child that lists the devices."""
    if getattr(sys, "frozen", False):
        return sys.executable, [PROBE_FLAG, out_file], {}
    import casdesk

    root = str(Path(casdesk.__file__).resolve().parent.parent)  # where this casdesk is imported from
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
    code = "import sys; from casdesk.gui.kit.device_probe import probe_main; sys.exit(probe_main(sys.argv[1]))"
    return sys.executable, ["-c", code, out_file], {"PYTHONPATH": path}


def read_result(out_file: str) -> list[tuple[str, str]] | None:
    """The child's list, or None when it wrote none (it failed)."""
    try:
        data = json.loads(Path(out_file).read_text())
        return [(str(k), str(v)) for k, v in data]
    except (OSError, ValueError, TypeError):
        return None
