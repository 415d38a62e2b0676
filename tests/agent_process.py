"""An agent as a child process (``forecourt agent``), started and killed the way an operator or a crash would."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

from tests.conftest import ROOT


class AgentProcess:
    def __init__(self, config: Path, *args: str, env: dict[str, str] | None = None) -> None:
        environ = dict(os.environ, FORECOURT_DEV="1")
        environ.pop("FORECOURT_CRASH_AT", None)
        environ.update(env or {})
        self.proc = subprocess.Popen([sys.executable, "-m", "main", "agent", "--config", str(config), *args],
                                     cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env=environ)
        lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._pump_output, args=(lines,), daemon=True)
        self._reader.start()
        seen = []
        while True:
            line = lines.get(timeout=30)
            seen.append(line)
            if "forecourt agent:" in line:
                return
            if not line:
                raise AssertionError("agent exited before it was ready:\n" + "".join(seen[-20:]))

    def _pump_output(self, lines: queue.Queue[str]) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            lines.put(line)
        self.proc.stdout.close()
        lines.put("")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._reader.join(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(15)
        self._reader.join(10)
