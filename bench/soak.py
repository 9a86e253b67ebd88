"""Randomized soak over real processes: deposits from an outside node, withdrawals, concurrent
broadcasters, SIGKILLs at random moments and at armed fault points, our node stopped and
restarted, reorganisations (invalidateblock / reconsiderblock) and imports; at the end the
chain is driven to quiescence and every invariant of tests/invariants.py is checked. An
operator on duty (tests.support.OperatorPersona) settles by hand what a broadcaster run left
interrupted, and what is still interrupted at quiescence; the report counts the interrupted
broadcasts settled by a person and by the machine.

    .venv/bin/python bench/soak.py --seed 7 --steps 60 [--db postgres|sqlite]

It starts its own PostgreSQL 15 cluster (or SQLite file) and two regtest nodes (ours and
the outside world) on loopback, and stops them by process id. The seed fixes the sequence
of actions (replay: the same command line); process timing still varies. Last line:
`soak: <steps> steps, <faults> faults, <violations> violations` (exit 1 if any violation).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.soak_chaos import Chaos, chaos_plan  # noqa: E402

PYTHON = sys.executable

from devtools.soak_plan import (  # noqa: E402
    USERS,
    armed_point,
    describe,
    plan,
    report,
    source_points,
)

FIGURES = ("soak",)


class Soak(Chaos):
    def __init__(self, seed: int, steps: int, db: str, log=print, chaos=True):
        self.seed, self.steps, self.db, self.log = seed, steps, db, log
        self.chaos_on = chaos
        self.faults = {"killed": 0, "node_down": 0, "reorg": 0}
        self.workdir = Path(tempfile.mkdtemp(prefix="cryptoadmin-soak-"))
        self.postgres = None
        self.nodes = []
        self.addresses = {}
        self.unowned = 0  # paid by outside to our node's addresses the books never gave out
        self.interrupted = set()  # broadcasts seen opened between steps (no process running)
        self.counts = (0, 0)  # of those, settled (by a person, by the machine)
        self.step_violations: list[str] = []

    # -- set-up ------------------------------------------------------------------------------

    def start(self):
        self.start_services()
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        from tests import invariants

        self.inv = invariants
        self.outside.generate(130)  # 30 mature coinbases to pay us with
        invariants.wait_synced(self.ours, self.outside)
        self.open_books()
        from tests.support import OperatorPersona

        # The operator on duty: settles by hand, through the close page's services, what the
        # broadcaster leaves interrupted (after the machine has had its chance).
        self.person = OperatorPersona("soak-operator")
        self.points = source_points()
        # Every user starts with a credited deposit, so withdrawals have something to spend.
        for user in USERS:
            self.outside.rpc("sendtoaddress", self.addresses[user], "1")
        invariants.mine(self.ours, self.outside, self.currency.polling_threshold)
        invariants.cycle(self.wallet)
        from ledger import services as ledger

        assert ledger.balance(ledger.user_account(USERS[0], self.currency, 201)) == 10**8
        return self

    def start_services(self):
        """The database (a PostgreSQL cluster of its own, or a SQLite file), the two nodes and
        the environment of the child processes."""
        from devtools.localservices import LocalBitcoind, LocalPostgres

        if self.db == "postgres":
            self.postgres = LocalPostgres().start()
            import psycopg2

            conn = psycopg2.connect(self.postgres.url.replace("postgres://", "postgresql://"))
            conn.autocommit = True
            conn.cursor().execute("CREATE DATABASE soak")
            conn.close()
            self.database_url = self.postgres.url_for("soak")
        else:
            self.database_url = f"sqlite:///{self.workdir / 'soak.sqlite3'}"
        self.outside = LocalBitcoind().start()
        self.nodes.append(self.outside)
        self.ours = LocalBitcoind(peer=self.outside).start()
        self.nodes.append(self.ours)
        self.env = dict(
            os.environ,
            DJANGO_SETTINGS_MODULE="devtools.settings_test",
            DATABASE_URL=self.database_url,
            PYTHONPATH=str(REPO),
        )
        self.env.pop("CRYPTOADMIN_FAULT", None)
        # Short node deadlines: a killed send's lease (when broadcasts have one) ends soon.
        self.env.update(NODE_RPC_TIMEOUT="10", BROADCAST_LEASE_MARGIN="1")
        os.environ.update(
            DJANGO_SETTINGS_MODULE="devtools.settings_test", DATABASE_URL=self.database_url
        )

    def open_books(self):
        """The currency, our wallet on our node, each user's receiving address, the treasury."""
        from ledger import services as ledger
        from ledger.models import Currency, Wallet

        self.currency = Currency.objects.create(
            code="BTC", name="BTC", crediting_threshold=2, polling_threshold=4
        )
        self.wallet = Wallet.objects.create(
            name="soak",
            currency=self.currency,
            backend="bitcoind",
            backend_settings={"url": self.ours.url},
        )
        for user in USERS:
            self.addresses[user] = ledger.new_receiving_address(self.wallet, user).address
        self.treasury = ledger.user_account("treasury", self.currency, 201)

    def stop(self):
        for node in reversed(self.nodes):
            node.stop()
        if self.postgres:
            from django.db import connections

            connections.close_all()
            self.postgres.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    # -- child processes ---------------------------------------------------------------------

    def command(self, kind: str) -> list[str]:
        if kind == "poll":
            return ["update_confirmations"]
        if kind == "broadcast":
            return ["broadcast", "--wallet", self.wallet.name]
        if kind == "import":
            return ["import_wallet_balance", self.wallet.name, str(self.treasury.pk), "--yes"]
        raise ValueError(kind)

    def spawn(self, kind: str, fault: str | None = None) -> subprocess.Popen:
        env = dict(self.env)
        if fault:
            env["CRYPTOADMIN_FAULT"] = fault
        return subprocess.Popen(
            [PYTHON, "manage.py", *self.command(kind)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def run_children(self, kind: str, step: dict) -> str:
        mode = step.get("mode", "clean")
        point = armed_point(step, self.points) if mode == "kill_at" else None
        if mode == "kill_at" and not point:
            mode = "clean"
        count = step.get("processes", 1)
        procs = [
            self.spawn(kind, f"{point}=kill" if mode == "kill_at" and i == 0 else None)
            for i in range(count)
        ]
        if mode == "kill_random":
            time.sleep(step["delay"])
            if procs[0].poll() is None:
                os.kill(procs[0].pid, signal.SIGKILL)
        outcomes = []
        for proc in procs:
            try:
                proc.communicate(timeout=180)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.communicate()
            if proc.returncode == -signal.SIGKILL:
                self.faults["killed"] += 1
                outcomes.append("killed")
            else:
                outcomes.append(f"exit {proc.returncode}")
        return f"{kind} ({mode}{' ' + point if mode == 'kill_at' else ''}): {', '.join(outcomes)}"

    # -- actions -----------------------------------------------------------------------------

    def do(self, step: dict) -> str:
        return getattr(self, f"do_{step['action']}")(step)

    def do_deposit(self, step):
        address = self.addresses[step["user"]]
        txid = self.outside.rpc("sendtoaddress", address, str(Decimal(step["amount"]) / 10**8))
        return f"outside paid {step['user']} {step['amount']} in {txid[:12]}"

    def do_withdraw(self, step):
        from broadcasts.errors import OutgoingError
        from broadcasts.withdrawals import send_external
        from ledger import services as ledger

        account = ledger.user_account(step["user"], self.currency, 201)
        try:
            row = send_external(
                account, self.outside.rpc("getnewaddress"), step["amount"], wallet=self.wallet
            )
        except OutgoingError as exc:
            return f"withdrawal of {step['user']} refused: {exc}"
        return f"withdrawal #{row.pk} of {step['user']} queued: {step['amount']}"

    def do_mine(self, step):
        self.inv.mine(self.ours, self.outside, step["blocks"])
        return f"mined {step['blocks']}, height {self.outside.rpc('getblockcount')}"

    def do_poll(self, step):
        return self.run_children("poll", step)

    def do_broadcast(self, step):
        waiting = self.interrupted_now()
        outcome = self.run_children("broadcast", step)
        # A person acts on what was interrupted before this run and is still interrupted after
        # it: the machine had its chance on it and left it.
        closed = self.person.settle(self.wallet, only=waiting & self.interrupted_now())
        return outcome + (f"; a person closed {closed} interrupted broadcast(s)" if closed else "")

    def interrupted_now(self) -> set[int]:
        from broadcasts.selections import interrupted_broadcasts

        return set(interrupted_broadcasts().filter(wallet=self.wallet).values_list("pk", flat=True))

    def note_opened(self):
        from broadcasts.models import Broadcast

        self.interrupted.update(
            Broadcast.objects.filter(wallet=self.wallet, state=Broadcast.State.OPENED).values_list(
                "pk", flat=True
            )
        )

    def settled_by(self) -> tuple[int, int]:
        """(by a person, by the machine) among the broadcasts seen interrupted: closed by hand
        (closed_by set), or out of the opened state with nobody's name on it."""
        from broadcasts.models import Broadcast

        rows = Broadcast.objects.filter(pk__in=self.interrupted).exclude(
            state=Broadcast.State.OPENED
        )
        person = rows.filter(closed_by__isnull=False).count()
        return person, rows.count() - person

    def do_import(self, step):
        address = self.ours.rpc("getnewaddress")  # coins whose owner the books do not know
        txid = self.outside.rpc("sendtoaddress", address, str(Decimal(step["amount"]) / 10**8))
        self.unowned += step["amount"]
        self.inv.wait_seen(self.ours, txid)
        return self.run_children("import", step)

    def do_restart(self, step):
        self.ours.stop(remove=False)
        self.faults["node_down"] += 1
        outcome = self.run_children(step["while_down"], {"mode": "clean"})
        self.ours.start()
        self.inv.wait_synced(self.ours, self.outside)
        return f"our node stopped; {outcome}; started again"

    def do_reorg(self, step):
        self.inv.wait_synced(self.ours, self.outside)
        height = self.outside.rpc("getblockcount")
        depth = min(step["depth"], height - 120)
        if depth < 1:
            return "reorg skipped: chain too short"
        first = self.outside.rpc("getblockhash", height - depth + 1)
        for node in (self.ours, self.outside):
            node.rpc("invalidateblock", first)
        self.faults["reorg"] += 1
        outcome = self.run_children("poll", {"mode": "clean"})
        if step["replace"]:
            # A longer branch wins: the old blocks stay behind, their transactions re-mined.
            self.outside.generate(depth + 1)
        for node in (self.ours, self.outside):
            node.rpc("reconsiderblock", first)
        self.inv.wait_synced(self.ours, self.outside)
        resent = self.resubmit_disconnected()
        return (
            f"reorg of {depth} block(s) ({'replaced' if step['replace'] else 'restored'}); "
            f"{outcome}{f'; {resent} disconnected transaction(s) resent' if resent else ''}"
        )

    def resubmit_disconnected(self) -> int:
        """This node build does not put the transactions of disconnected blocks back in its
        mempool (a replaced branch leaves them unconfirmed and nowhere); on a real network peers
        relay them again. Resend each one to the miner, as the network would."""
        resent = 0
        pool = set(self.outside.rpc("getrawmempool"))
        for node in (self.outside, self.ours):
            for entry in self.inv.node_entries(node):
                txid = entry.get("txid")
                if txid and int(entry.get("confirmations", 0)) == 0 and txid not in pool:
                    try:
                        self.outside.rpc(
                            "sendrawtransaction", node.rpc("gettransaction", txid)["hex"]
                        )
                        resent += 1
                    except Exception:
                        pass  # already known, or spent by another branch: stays as the chain says
                    pool.add(txid)
        return resent

    # -- the run -----------------------------------------------------------------------------

    def run(self) -> list[str]:
        from ledger.models import Wallet

        steps = plan(self.seed, self.steps)
        extras = chaos_plan(self.seed, self.steps) if self.chaos_on else {}
        for i, step in enumerate(steps, 1):
            try:
                outcome = self.do(step)
            except Exception as exc:  # a driver error is reported, the soak goes on
                outcome = f"driver error {type(exc).__name__}: {exc}"
            self.log(f"step {i}/{self.steps}: {describe(step)} -> {outcome}")
            if i in extras:
                try:
                    outcome = self.chaos(extras[i])
                except Exception as exc:
                    outcome = f"driver error {type(exc).__name__}: {exc}"
                self.log(f"step {i}/{self.steps} extra: {outcome}")
            self.note_opened()
            # One payment by construction, from the database alone, after every step.
            for problem in self.inv.signed_attempts_conflict(self.wallet):
                self.step_violations.append(f"after step {i}: {problem}")
        wallet = Wallet.objects.select_related("currency").get(pk=self.wallet.pk)
        rounds = self.inv.quiesce(wallet, self.ours, self.outside, person=self.person)
        self.log(f"quiescent after {rounds} round(s)")
        for note in self.person.notes:
            self.log(f"operator: {note}")
        violations = (
            self.step_violations + self.finish_imports(wallet) + self.inv.check(wallet, self.ours)
        )
        self.counts = self.settled_by()
        return violations

    def finish_imports(self, wallet) -> list[str]:
        """An import killed before its commit is done again by the admin: import what is left,
        then the imports must add up to exactly what outside paid to unowned addresses
        (an import that absorbed anything else would hide a books/node difference)."""
        from django.db.models import Sum

        from ledger import imports
        from ledger.models import Transaction

        def imported():
            return (
                Transaction.objects.filter(kind=Transaction.Kind.IMPORT).aggregate(s=Sum("amount"))[
                    "s"
                ]
                or 0
            )

        left = self.unowned - imported()
        if left > 0:
            # `expected`: the admin confirms the amount they saw; anything else is refused.
            try:
                entry = imports.import_unaccounted_balance(
                    wallet.pk, self.treasury.pk, expected=left
                )
                self.log(f"final import: {entry.amount}")
            except imports.WalletImportError as exc:
                self.log(f"final import refused: {exc}")
        imported = imported()
        if imported != self.unowned:
            return [
                f"imports booked {imported}, outside paid {self.unowned} to addresses the books "
                "never gave out"
            ]
        return []


def arguments(argv):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seed", type=int, default=None, help="default: a random one (printed)")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--db", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--plan", action="store_true", help="print the seed's actions and exit")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="5 steps of seed 108 on SQLite, no kill: seconds (the suite)",
    )
    parser.add_argument(
        "--no-chaos", action="store_true", help="without the extra faults of bench/soak_chaos.py"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.db = 5, "sqlite"
        args.seed = 108 if args.seed is None else args.seed
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1_000_000)
    return args


def main(argv=None):
    args = arguments(argv)
    seed = args.seed
    print(
        f"soak: seed {seed} (replay: bench/soak.py --seed {seed} --steps {args.steps} --db "
        f"{args.db})",
        flush=True,
    )
    if args.plan:
        for i, step in enumerate(plan(seed, args.steps), 1):
            print(f"step {i}: {describe(step)}")
        return 0
    # SIGTERM (and SIGINT, which background jobs ignore) stops the soak cleanly: its nodes and
    # database are stopped by the finally below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    soak = Soak(
        seed,
        args.steps,
        args.db,
        log=lambda line: print(f"[{time.monotonic() - started:5.1f}s] {line}", flush=True),
        chaos=not args.no_chaos,
    )
    try:
        soak.start()
        soak.log("set up: database migrated, two nodes, users funded")
        violations = soak.run()
    finally:
        soak.stop()
    return report(soak, args, violations, time.monotonic() - started)


if __name__ == "__main__":
    sys.exit(main())
