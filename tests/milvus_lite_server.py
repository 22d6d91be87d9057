"""A real Milvus server for tests: ``milvus-lite server`` (Milvus's gRPC protocol) in a process of
its own on a loopback port, stopped and restarted on the same port and data folder.

The server shuts down cleanly on SIGINT only through Python's KeyboardInterrupt, and Python leaves
SIGINT ignored when it starts with it ignored, as a command that a non-interactive shell runs in
the background does (``pytest ... &`` in a script, some CI runners), and its children inherit
that. The server therefore installs the handler itself; without it each stop would wait out the
timeout and end in a SIGKILL, and a test of a clean shutdown would test a crash instead.

The port accepts connections as soon as it is bound, before the server has started its threads;
a SIGINT in that window ends the process with a traceback instead of a clean shutdown. A start
therefore waits for the line the server prints once it has started (its output unbuffered)."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

STARTUP_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0
READY_LINE = b"gRPC server listening on"
LAUNCH = (
    "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "from milvus_lite.cmdline import main; sys.exit(main(sys.argv[1:]))"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MilvusServer:
    """``with MilvusServer(folder) as milvus: open_index(milvus.uri, ...)``; :meth:`stop` and
    :meth:`start` again keep the port, so clients find it at the same URI."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.log = data_dir.parent / f"{data_dir.name}.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MilvusServer:
        """Start the server and return once it accepts connections."""
        assert self._process is None, "already running"
        command = [sys.executable, "-u", "-c", LAUNCH, "server", "--data-dir", str(self.data_dir)]
        command += ["--host", "127.0.0.1", "--port", str(self.port)]
        log_start = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._process = None
                raise RuntimeError(f"milvus-lite server exited: {self.log.read_text()[-2000:]}")
            if self._has_started(log_start):
                return self
            time.sleep(0.1)
        self.kill()
        raise TimeoutError(f"milvus-lite server did not start within {STARTUP_TIMEOUT_S:g} s")

    def _has_started(self, log_start: int) -> bool:
        """The server printed its ready line since this start and its port accepts connections."""
        with self.log.open("rb") as log:
            log.seek(log_start)
            if READY_LINE not in log.read():
                return False
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
        except OSError:
            return False
        return True

    def stop(self) -> None:
        """Shut down as Ctrl-C does (the server drains requests and closes its data folder).
        A server that does not exit cleanly is killed and the stop fails: a clean shutdown
        that silently became a crash would let a test pass for the wrong reason."""
        if self._process is None:
            return
        process, self._process = self._process, None
        process.send_signal(signal.SIGINT)
        try:
            code = process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise RuntimeError(
                f"milvus-lite server ignored SIGINT for {STOP_TIMEOUT_S:g} s and was killed: "
                f"{self.log.read_text()[-2000:]}"
            ) from None
        if code != 0:
            raise RuntimeError(
                f"milvus-lite server exited with {code}: {self.log.read_text()[-2000:]}"
            )

    def kill(self) -> None:
        """Die at once, as a crash or an OOM kill does (SIGKILL: nothing is flushed)."""
        if self._process is None:
            return
        self._process.kill()
        self._process.wait()
        self._process = None

    def __enter__(self) -> MilvusServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
