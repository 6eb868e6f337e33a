"""Child processes of the local supervisor: each in its own process group, with a log file.

Children must never outlive the supervisor. `stop()` signals the whole process group (so grandchildren
go too), and on Linux every child is started with PR_SET_PDEATHSIG=SIGTERM, so the kernel signals it
when the supervisor dies, even by SIGKILL. PDEATHSIG fires when the *thread* that forked the child
exits, so it is only armed when spawning from the main thread (start the platform from there; the
asyncio loop of `asyncio.run` and of pytest-asyncio runs on it). As a last resort an atexit hook
kills whatever is still running when the interpreter exits normally.

The signal is armed by util-linux's `setpriv --pdeathsig TERM` exec'ing the command, so that no Python
runs in the forked child: a `preexec_fn` does, and in a parent with threads (the asyncio loop's
executors, gRPC) the child can crash before exec (seen as a SIGSEGV in logging's at-fork hook during a
chaos run). Without setpriv the prctl is made from a `preexec_fn`, as a fallback.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import ctypes.util
import logging
import os
import random
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


class ProcessError(RuntimeError):
    """A managed process failed to start, died, or did not become reachable."""


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl  # type: ignore[no-any-return]
    except (OSError, AttributeError):
        return None


# Resolved once in the parent, so the forked child only makes one foreign call before exec.
_PRCTL = _load_prctl()
_SETPRIV = shutil.which("setpriv") if sys.platform.startswith("linux") else None


def _pdeathsig_preexec(parent_pid: int) -> Callable[[], None]:
    def preexec() -> None:
        if _PRCTL is not None:
            _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def ephemeral_port_range() -> tuple[int, int]:
    """The kernel's range for outgoing connections' local ports (Linux: ip_local_port_range)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[:2]
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default; IANA's dynamic range starts at 49152


# Listen ports for test and bench platforms come from here: below the ephemeral range (outgoing
# connections take their local ports from it, so a port picked there can be taken by the time the
# server binds it) and above the well-known services a developer may run (Redis, Kafka, Postgres ...).
LISTEN_PORT_RANGE = (20000, 32000)
_picker = random.Random()


def free_port(host: str = "127.0.0.1", *, avoid: Iterable[int] = ()) -> int:
    """A TCP port nothing listens on now, outside the ephemeral range (picked at random from
    LISTEN_PORT_RANGE, so that concurrent test runs rarely try the same one)."""
    low, high = LISTEN_PORT_RANGE
    eph_low, eph_high = ephemeral_port_range()
    avoid = set(avoid)
    for _ in range(2000):
        port = _picker.randint(low, high)
        if eph_low <= port <= eph_high or port in avoid:
            continue
        if port_is_free(port, host) and not port_accepts(port, host, timeout=0.2):
            return port
    raise RuntimeError(f"no free TCP port on {host} in {low}-{high} outside the ephemeral range")


def ports_from_env(port_env: Mapping[str, str], environ: Mapping[str, str]) -> dict[str, int]:
    """{field: port} for each `port_env` field whose variable is set in `environ`; ValueError naming the
    variable when a value is not a TCP port number."""
    values: dict[str, int] = {}
    for field, var in port_env.items():
        raw = environ.get(var, "").strip()
        if raw:
            if not raw.isdigit() or not 0 < int(raw) < 65536:
                raise ValueError(f"{var} must be a TCP port number, got {raw!r}")
            values[field] = int(raw)
    return values


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True if a server could bind `host:port` now (SO_REUSEADDR set, as servers do)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def port_accepts(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """True if a TCP connection to `host:port` succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


async def port_accepts_async(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """Async `port_accepts`: True if a TCP connection to `host:port` succeeds."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


def _proc_state(pid: int) -> tuple[str, int] | None:
    """(state letter, process group id) of a Linux process from /proc, or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[0], int(fields[2])


def pid_running(pid: int) -> bool:
    """True if `pid` exists and is not a zombie."""
    if sys.platform.startswith("linux"):
        state = _proc_state(pid)
        return state is not None and state[0] not in ("Z", "X")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group `pgid`."""
    if not sys.platform.startswith("linux"):
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [pgid]
    members = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            state = _proc_state(int(entry.name))
            if state is not None and state[1] == pgid and state[0] not in ("Z", "X"):
                members.append(int(entry.name))
    return members


_LIVE: weakref.WeakSet[ManagedProcess] = weakref.WeakSet()


@atexit.register
def _kill_leftovers() -> None:
    for proc in list(_LIVE):
        with contextlib.suppress(Exception):
            proc.kill(signal.SIGKILL)


class ManagedProcess:
    """One command run as a child in its own process group, logging to `DATA_DIR/logs/NAME.log`.

    `start()` may be called again after the process ended (a restart); the log file is appended to,
    with a header line per start.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        data_dir: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        port: int | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.name = name
        self.argv = [str(a) for a in argv]
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.port = port
        self.host = host
        self.log_path = Path(data_dir) / "logs" / f"{name}.log"
        self.starts = 0
        self.started_at: float | None = None
        self._popen: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"<ManagedProcess {self.name} pid={self.pid} alive={self.is_alive}>"

    @property
    def pid(self) -> int | None:
        """Pid of the current (or last) run; also its process group id."""
        return self._popen.pid if self._popen is not None else None

    @property
    def returncode(self) -> int | None:
        """Exit status of the last run (negative: killed by that signal); None while running."""
        return self._popen.poll() if self._popen is not None else None

    @property
    def is_alive(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def start(self) -> int:
        """Spawns the command; returns its pid. Call from the main thread (see the module docstring)."""
        if self.is_alive:
            raise ProcessError(f"{self.name} is already running (pid {self.pid})")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        on_main = threading.current_thread() is threading.main_thread()
        if not on_main:
            log.warning("%s: spawned off the main thread; it will not die with the supervisor", self.name)
        with open(self.log_path, "ab") as log_file:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            header = f"----- {stamp} start #{self.starts + 1} of {self.name}: {shlex.join(self.argv)}\n"
            log_file.write(header.encode())
            log_file.flush()
            try:
                argv, preexec = self.argv, None
                search = (os.environ if self.env is None else self.env).get("PATH", os.defpath)
                if shutil.which(self.argv[0], path=search) is None:  # say so before setpriv execs it
                    raise OSError(f"no such executable: {self.argv[0]}")
                if on_main and _SETPRIV:
                    argv = [_SETPRIV, "--pdeathsig", "TERM", "--", *self.argv]
                elif on_main:
                    preexec = _pdeathsig_preexec(os.getpid())
                self._popen = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    env=self.env,
                    cwd=self.cwd,
                    start_new_session=True,
                    preexec_fn=preexec,
                )
            except OSError as exc:
                raise ProcessError(f"{self.name}: cannot run {self.argv[0]}: {exc}") from exc
        if argv is not self.argv:
            self._wait_past_setpriv()
        self.starts += 1
        self.started_at = time.monotonic()
        _LIVE.add(self)
        return self._popen.pid

    def _wait_past_setpriv(self, timeout: float = 5.0) -> None:
        """Returns once setpriv has armed the parent-death signal and exec'd the command (the pid's
        command line is no longer setpriv's), so that a supervisor killed right after `start()` still
        takes the child with it. Usually a millisecond or two."""
        assert self._popen is not None and _SETPRIV is not None
        cmdline = Path(f"/proc/{self._popen.pid}/cmdline")
        setpriv = _SETPRIV.encode()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._popen.poll() is None:
            # Only a command line that is there and is not setpriv's says setpriv is done: an empty or
            # unreadable one (read in the middle of the exec, on a busy machine) is not an answer yet.
            with contextlib.suppress(OSError):
                first = cmdline.read_bytes().split(b"\0", 1)[0]
                if first and first != setpriv:
                    return
            time.sleep(0.001)

    def send_signal(self, sig: int = signal.SIGTERM, *, group: bool = True) -> None:
        """Sends `sig` to the process group (or only the process); a no-op if it is gone."""
        if self._popen is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if group:
                os.killpg(self._popen.pid, sig)
            elif self._popen.poll() is None:
                self._popen.send_signal(sig)

    def kill(self, sig: int = signal.SIGKILL, *, group: bool = True) -> None:
        """`kill -9` (or another signal) without waiting: for chaos tests and emergencies."""
        self.send_signal(sig, group=group)

    def _group_alive(self) -> bool:
        if self._popen is None:
            return False
        self._popen.poll()  # reap the leader if it has exited
        return self.is_alive or bool(group_members(self._popen.pid))

    async def wait(self, timeout: float | None = None) -> int:
        """Waits for the process to exit; returns its exit status. Raises TimeoutError."""
        if self._popen is None:
            raise ProcessError(f"{self.name} was never started")
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self._popen.poll()) is None:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} (pid {self.pid}) still running after {timeout}s")
            await asyncio.sleep(0.02)
        return code

    async def _wait_group_exit(self, timeout: float | None) -> bool:
        """Waits until no process of the group is left; False if `timeout` passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if not self._group_alive():
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.02)

    async def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM to the process group, up to `timeout` s for all of it to exit, then SIGKILL.

        Returns the leader's exit status (None if it was never started).
        """
        if self._popen is None:
            return None
        if self._group_alive():
            self.send_signal(signal.SIGTERM)
            if not await self._wait_group_exit(timeout):
                log.warning(
                    "%s (pid %s) ignored SIGTERM for %.0fs; sending SIGKILL", self.name, self.pid, timeout
                )
                self.send_signal(signal.SIGKILL)
                await self._wait_group_exit(None)
        _LIVE.discard(self)
        return self._popen.wait()

    def tail_log(self, lines: int = 30) -> str:
        """The last `lines` lines of the log file (for error messages)."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 16_384))
                data = f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(data.splitlines()[-lines:])

    def describe_failure(self, problem: str) -> str:
        """`problem`, the process's state, and the tail of its log, as one message."""
        code = self.returncode
        state = "still running" if code is None else f"exited with code {code}"
        tail = self.tail_log()
        indented = "\n".join(f"    {line}" for line in tail.splitlines()) or "    (empty)"
        return f"{self.name}: {problem} (pid {self.pid}, {state}). Last lines of {self.log_path}:\n{indented}"

    async def wait_for_port(self, timeout: float = 30.0, port: int | None = None) -> float:
        """Waits until `host:port` accepts TCP connections; returns seconds waited.

        Fails at once if the process exits meanwhile; raises ProcessError with the log tail on timeout.
        """
        port = port if port is not None else self.port
        if port is None:
            raise ValueError(f"{self.name}: no port to wait for")
        began = time.monotonic()
        while True:
            if not self.is_alive:
                raise ProcessError(self.describe_failure(f"exited before listening on {self.host}:{port}"))
            if await port_accepts_async(port, self.host, 0.5):
                return time.monotonic() - began
            if time.monotonic() - began > timeout:
                raise ProcessError(
                    self.describe_failure(
                        f"did not accept connections on {self.host}:{port} within {timeout:g}s"
                    )
                )
            await asyncio.sleep(0.02)
