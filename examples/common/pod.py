"""Run several "containers" as one pod: `emulator run ... -- python3 examples/common/pod.py 'A' 'B'`.

`emulator run` registers one pod per process. A pod with two containers (a sidecar, an ambassador, an
adapter) is therefore one `run` whose process starts the containers itself, as the kubelet would:

- each argument is one container, a command line (`'examples/sidecar/web.py --port 8000'`); a first
  word ending in `.py` runs with this same Python;
- all containers get the pod's environment (POD_IP, the service variables, ...) plus SHARED_DIR, a
  fresh empty directory standing for an `emptyDir` volume mounted in every container;
- they share the pod's address, POD_IP: on one machine it plays the part of the pod's `localhost`;
- when one container exits, or on SIGTERM/SIGINT, the others are stopped; the pod exits with the
  first non-zero status (0 when all succeeded) and the shared directory is removed.

Standard library only.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time


def container_argv(command_line: str) -> list[str]:
    """`'web.py --port 8000'` → `[python, 'web.py', '--port', '8000']`; other commands run as they are."""
    words = shlex.split(command_line)
    if not words:
        raise SystemExit("pod.py: an empty container command")
    return [sys.executable, *words] if words[0].endswith(".py") else words


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        return 0 if argv else 2
    shared = tempfile.mkdtemp(prefix=f"{os.environ.get('POD_NAME', 'pod')}-shared-")
    env = {**os.environ, "SHARED_DIR": shared}
    containers = [subprocess.Popen(container_argv(line), env=env) for line in argv]
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for child in containers:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        # A pod lives as long as all its containers (restartPolicy: Never): the first exit ends it.
        while all(child.poll() is None for child in containers) and not stopping:
            time.sleep(0.1)
        stop(signal.SIGTERM, None)
        deadline = time.monotonic() + 5
        for child in containers:
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
    finally:
        shutil.rmtree(shared, ignore_errors=True)
    # A container that we stopped ends with -SIGTERM; only a container's own failure is the pod's.
    failures = [c.returncode for c in containers if c.returncode not in (0, -signal.SIGTERM)]
    return failures[0] if failures and failures[0] > 0 else (1 if failures else 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
