"""The soak's extra faults, drawn from a stream of their own so a seed's main actions stay the
same: a withdrawal to another user's deposit address (one of ours); two broadcasters at once
with the first killed inside build_signed (on SQLite nothing but the database keeps them
apart); an operator closing "never left" at a random moment, while a send may be in flight
(its lease cut short as a wrong clock would); a signed attempt closed or failed earlier that
is mined elsewhere while our node is cut off, so our later send loses (a double spend of our
own); PostgreSQL crashed (`-m immediate`) and started again under a running broadcaster; and
the broadcaster's connections terminated by the server (`pg_terminate_backend`) mid-step."""

from __future__ import annotations

import os
import random
import signal
import time

KINDS = [
    ("own_address", 3),
    ("race_build", 3),
    ("never_left", 3),
    ("late_copy", 2),
    ("pg_crash", 2),
    ("pg_terminate", 2),
]
PG_ONLY = ("pg_crash", "pg_terminate")
IN_FLIGHT = ("broadcast.after_open", "broadcast.after_sign_commit", "broadcast.after_raw_send")


def chaos_plan(seed: int, steps: int, rate: float = 0.3) -> dict[int, dict]:
    """step number -> the extra fault after it: a pure function of (seed, steps)."""
    rng = random.Random(seed * 7919 + 17)
    names, weights = zip(*KINDS, strict=True)
    out = {}
    for i in range(1, steps + 1):
        if rng.random() < rate:
            out[i] = {
                "kind": rng.choices(names, weights)[0],
                "delay": round(rng.uniform(0.2, 2), 2),
            }
    return out


class Chaos:
    """Mixed into bench.soak.Soak: each method returns what it did, in words."""

    def chaos(self, extra: dict) -> str:
        kind = extra["kind"]
        if kind in PG_ONLY and self.db != "postgres":
            kind = "race_build"  # SQLite: no server to crash; two broadcasters instead
        self.faults[kind] = self.faults.get(kind, 0) + 1
        return f"{kind}: " + getattr(self, f"chaos_{kind}")(extra)

    def chaos_own_address(self, extra) -> str:
        from broadcasts.errors import OutgoingError
        from broadcasts.withdrawals import send_external
        from ledger import services as ledger

        payer, payee = self.rng_pair(extra)
        account = ledger.user_account(payer, self.currency, 201)
        try:
            row = send_external(account, self.addresses[payee], 150_000, wallet=self.wallet)
        except OutgoingError as exc:
            return f"refused: {exc}"
        return f"withdrawal #{row.pk} of {payer} to {payee}'s deposit address"

    def rng_pair(self, extra):
        users = sorted(self.addresses)
        i = int(extra["delay"] * 100) % len(users)
        return users[i], users[(i + 1) % len(users)]

    def chaos_race_build(self, extra) -> str:
        from broadcasts.errors import OutgoingError
        from broadcasts.withdrawals import send_external
        from ledger import services as ledger

        payer, _ = self.rng_pair(extra)
        try:  # something to build, so the first one dies inside build_signed
            send_external(
                ledger.user_account(payer, self.currency, 201),
                self.outside.rpc("getnewaddress"),
                130_000,
                wallet=self.wallet,
            )
        except OutgoingError:
            pass
        first = self.spawn("broadcast", "broadcast.after_fund=kill")
        second = self.spawn("broadcast")
        return ", ".join(self.wait_child(p) for p in (first, second))

    def chaos_never_left(self, extra) -> str:
        from broadcasts.closing import close_broadcast_by_hand
        from broadcasts.models import Broadcast
        from cryptoadmin.errors import CloseRefused
        from ledger.backends import BackendError
        from tests.broadcast_helpers import end_lease

        self.chaos_own_address(extra)  # something to send
        # Parked at one of the send's steps while the person acts: in flight for real.
        point = IN_FLIGHT[int(extra["delay"] * 100) % len(IN_FLIGHT)]
        proc = self.spawn("broadcast", f"{point}=pause:3")
        if not proc.stdout.readline().startswith("paused"):  # nothing sent, or not its turn
            return f"nothing in flight; broadcaster {self.wait_child(proc)}"
        time.sleep(extra["delay"] / 2)
        closed = []
        for broadcast in Broadcast.objects.filter(wallet=self.wallet, state="opened"):
            end_lease(broadcast)  # a wrong clock: the send may still be in flight
            try:
                close_broadcast_by_hand(
                    broadcast, "never_left", by=self.person.user, reason="soak: at random"
                )
                closed.append(broadcast.pk)
            except (CloseRefused, BackendError) as exc:
                closed.append(f"#{broadcast.pk} refused ({str(exc)[:60]})")
        return f"closed {closed or 'nothing'}; broadcaster {self.wait_child(proc)}"

    def chaos_late_copy(self, extra) -> str:
        from broadcasts.models import Broadcast

        candidate = (
            Broadcast.objects.filter(
                wallet=self.wallet, state__in=["failed", "closed_failed"], dead_reason=""
            )
            .exclude(raw_tx="")
            .order_by("-id")
            .first()
        )
        if candidate is None:
            candidate = self.signed_and_closed()
        if candidate is None:
            return "no signed attempt to copy"
        self.ours.rpc("setnetworkactive", False)
        try:
            outcome = self.run_children("broadcast", {"mode": "clean"})
            try:
                self.outside.rpc("sendrawtransaction", candidate.raw_tx)
                mined = f"#{candidate.pk} mined elsewhere"
            except Exception as exc:
                mined = f"#{candidate.pk} refused elsewhere ({str(exc)[:40]})"
            self.outside.generate(self.currency.polling_threshold)
        finally:
            self.ours.rpc("setnetworkactive", True)
        self.inv.wait_synced(self.ours, self.outside, timeout=60)
        return f"{mined}; while cut off: {outcome}"

    def signed_and_closed(self):
        """A withdrawal signed by a broadcaster killed before sending, then closed by a person
        as never left: a signed attempt whose bytes only the database holds."""
        from broadcasts.closing import close_broadcast_by_hand
        from broadcasts.models import Broadcast
        from cryptoadmin.errors import CloseRefused
        from tests.broadcast_helpers import end_lease

        self.chaos_own_address({"delay": 0.5})
        self.wait_child(self.spawn("broadcast", "broadcast.after_sign_commit=kill"))
        for broadcast in Broadcast.objects.filter(wallet=self.wallet, state="opened"):
            end_lease(broadcast)
            try:
                close_broadcast_by_hand(
                    broadcast, "never_left", by=self.person.user, reason="soak: copy"
                )
            except CloseRefused:
                continue
            if broadcast.raw_tx:
                return broadcast
        return None

    def chaos_pg_crash(self, extra) -> str:
        from django.db import connections

        proc = self.spawn("broadcast")
        time.sleep(extra["delay"])
        os.kill(self.postgres.pid, signal.SIGQUIT)  # what pg_ctl stop -m immediate sends
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(self.postgres.pid, 0)
                time.sleep(0.05)
            except ProcessLookupError:
                break
        outcome = self.wait_child(proc)
        connections.close_all()
        self.postgres.start()
        return f"PostgreSQL crashed and started again; broadcaster {outcome}"

    def chaos_pg_terminate(self, extra) -> str:
        import psycopg2

        proc = self.spawn("broadcast")
        time.sleep(extra["delay"])
        conn = psycopg2.connect(self.postgres.url.replace("postgres://", "postgresql://"))
        conn.autocommit = True
        with conn.cursor() as cursor:
            cursor.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = 'soak' AND pid <> pg_backend_pid()"
            )
            killed = cursor.fetchone()[0]
        conn.close()
        from django.db import connections

        connections.close_all()  # ours was among them
        return f"{killed} connection(s) terminated; broadcaster {self.wait_child(proc)}"

    def wait_child(self, proc) -> str:
        try:
            proc.communicate(timeout=180)
        except Exception:
            os.kill(proc.pid, signal.SIGKILL)
            proc.communicate()
        if proc.returncode == -signal.SIGKILL:
            self.faults["killed"] += 1
            return "killed"
        return f"exit {proc.returncode}"
