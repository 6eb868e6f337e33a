"""ManagedProcess: start, port wait (success, timeout, early exit), stop, kill -9, no orphans."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from yiju_infra.local.processes import (
    ManagedProcess,
    ProcessError,
    free_port,
    group_members,
    pid_running,
    port_accepts,
    port_is_free,
)

LISTENER = (
    "import socket, sys, time; s = socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen(); "
    "print('listening', flush=True); time.sleep(120)"
)


async def wait_until(predicate: object, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        await asyncio.sleep(0.02)
    return False


def test_free_port_is_bindable_and_unused() -> None:
    port = free_port()
    assert 0 < port < 65536
    assert port_is_free(port)
    assert not port_accepts(port)


async def test_start_wait_for_port_and_stop(tmp_path: Path) -> None:
    port = free_port()
    proc = ManagedProcess(
        "listener", [sys.executable, "-c", LISTENER, str(port)], data_dir=tmp_path, port=port
    )
    pid = proc.start()
    try:
        assert proc.pid == pid and proc.is_alive and proc.returncode is None
        assert os.getpgid(pid) == pid  # its own process group
        waited = await proc.wait_for_port(timeout=10)
        assert waited < 10 and port_accepts(port)
    finally:
        code = await proc.stop(timeout=5)
    assert code == -signal.SIGTERM
    assert not proc.is_alive and not pid_running(pid) and group_members(pid) == []
    log = proc.log_path.read_text()
    assert proc.log_path == tmp_path / "logs" / "listener.log"
    assert "start #1 of listener" in log and "listening" in log


async def test_env_is_passed(tmp_path: Path) -> None:
    code = "import os; print('value=' + os.environ['YIJU_TEST_VALUE'], flush=True)"
    proc = ManagedProcess(
        "env", [sys.executable, "-c", code], data_dir=tmp_path, env={**os.environ, "YIJU_TEST_VALUE": "42"}
    )
    proc.start()
    assert await proc.wait(timeout=10) == 0
    assert "value=42" in proc.tail_log()


async def test_wait_for_port_timeout_reports_log_tail(tmp_path: Path) -> None:
    port = free_port()
    proc = ManagedProcess(
        "mute", ["sh", "-c", "echo hello-from-child; exec sleep 60"], data_dir=tmp_path, port=port
    )
    proc.start()
    try:
        began = time.monotonic()
        with pytest.raises(ProcessError) as info:
            await proc.wait_for_port(timeout=0.5)
        assert time.monotonic() - began < 3
        message = str(info.value)
        assert f"127.0.0.1:{port}" in message and "within 0.5s" in message
        assert "still running" in message and "hello-from-child" in message
    finally:
        await proc.stop()


async def test_wait_for_port_fails_fast_when_the_process_exits(tmp_path: Path) -> None:
    proc = ManagedProcess("crash", ["sh", "-c", "echo boom >&2; exit 3"], data_dir=tmp_path, port=free_port())
    proc.start()
    began = time.monotonic()
    with pytest.raises(ProcessError) as info:
        await proc.wait_for_port(timeout=30)
    assert time.monotonic() - began < 5
    assert "exited with code 3" in str(info.value) and "boom" in str(info.value)


async def test_kill_9(tmp_path: Path) -> None:
    proc = ManagedProcess("victim", ["sleep", "60"], data_dir=tmp_path)
    pid = proc.start()
    proc.kill()
    assert await proc.wait(timeout=5) == -signal.SIGKILL
    assert not proc.is_alive and not pid_running(pid)


async def test_stop_takes_the_whole_group_and_escalates_to_sigkill(tmp_path: Path) -> None:
    # The shell and its background child both ignore SIGTERM: stop() must SIGKILL the group.
    pidfile = tmp_path / "grandchild.pid"
    script = f"trap '' TERM; sleep 60 & echo $! > {pidfile}; wait"
    proc = ManagedProcess("stubborn", ["sh", "-c", script], data_dir=tmp_path)
    pid = proc.start()
    assert await wait_until(lambda: pidfile.exists() and pidfile.read_text().strip())
    grandchild = int(pidfile.read_text())
    assert pid_running(grandchild) and set(group_members(pid)) == {pid, grandchild}
    began = time.monotonic()
    code = await proc.stop(timeout=0.5)
    assert 0.5 <= time.monotonic() - began < 5
    assert code == -signal.SIGKILL
    assert not pid_running(grandchild) and group_members(pid) == []


async def test_restart_appends_to_the_log(tmp_path: Path) -> None:
    proc = ManagedProcess("twice", ["sh", "-c", "echo run"], data_dir=tmp_path)
    for _ in range(2):
        proc.start()
        assert await proc.wait(timeout=5) == 0
    assert proc.starts == 2
    log = proc.log_path.read_text()
    assert "start #1 of twice" in log and "start #2 of twice" in log and log.count("run\n") == 2


async def test_start_twice_is_refused(tmp_path: Path) -> None:
    proc = ManagedProcess("once", ["sleep", "60"], data_dir=tmp_path)
    proc.start()
    try:
        with pytest.raises(ProcessError, match="already running"):
            proc.start()
    finally:
        await proc.stop()


async def test_missing_command_is_a_process_error(tmp_path: Path) -> None:
    proc = ManagedProcess("ghost", [str(tmp_path / "no-such-binary")], data_dir=tmp_path)
    with pytest.raises(ProcessError, match="cannot run"):
        proc.start()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_children_die_with_a_sigkilled_supervisor(tmp_path: Path) -> None:
    supervisor_code = textwrap.dedent(
        """
        import sys, time
        from pathlib import Path
        from yiju_infra.local.processes import ManagedProcess
        proc = ManagedProcess("sleeper", ["sleep", "120"], data_dir=Path(sys.argv[1]))
        print(proc.start(), flush=True)
        time.sleep(120)
        """
    )
    supervisor = subprocess.Popen(
        [sys.executable, "-c", supervisor_code, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert supervisor.stdout is not None
        child = int(supervisor.stdout.readline())
        assert pid_running(child)
        supervisor.kill()  # SIGKILL: no cleanup code runs in the supervisor
        supervisor.wait(timeout=5)
        deadline = time.monotonic() + 5
        while pid_running(child) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not pid_running(child), "the child outlived its supervisor"
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait()
