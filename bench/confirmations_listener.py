"""bench/confirmations.py's node part: the listener's CPU per notification and a deposit's
delay against walletnotify's process, and what an idle cycle's node calls cost."""

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def notifications(node, wallet, env, count, blocks=20, walletnotify_runs=3, settle=3):
    """The listener's CPU per notification and a deposit's delay, against walletnotify's process."""
    from ledger import services
    from ledger.models import Wallet

    Wallet.objects.filter(pk=wallet.pk).update(
        backend_settings={**wallet.backend_settings, "zmq": node.zmq_url}
    )
    address = services.new_receiving_address(wallet, "bench-user")
    child = subprocess.Popen(
        [sys.executable, "manage.py", "listen_node", "--wallet", wallet.name, "--resync", "3600"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        first = child.stdout.readline()
        assert "listening" in first, first + child.stdout.read()[-3000:]
        time.sleep(settle)  # its start-up cycle
        delays, per_tx = _deposits(node, child, address, count)
        per_block, crediting_block = _blocks(node, child, wallet, blocks)
    finally:
        child.terminate()
        child.wait(timeout=30)
    runs = _walletnotify_cpu(env, walletnotify_runs)
    deposits = len(delays)
    print(
        f"listener: {per_tx * 1000:.1f} ms CPU per wallet transaction notification ({deposits} "
        f"deposits, the node announces each), {per_block * 1000:.1f} ms CPU per block notification "
        f"(a poll cycle, {blocks} blocks; {crediting_block * 1000:.0f} ms for the block crediting "
        f"the {deposits} deposits) | deposit recorded {statistics.median(delays) * 1000:.0f} ms "
        f"after sendtoaddress returned (median, max {max(delays) * 1000:.0f} ms) | manage.py "
        f"walletnotify: {statistics.median(runs) * 1000:.0f} ms CPU per call (median of "
        f"{walletnotify_runs})",
        flush=True,
    )


def _deposits(node, child, address, count):
    """Each deposit's delay until recorded, and the listener's CPU per deposit."""
    from ledger.models import NetworkTransaction

    delays, before = [], cpu_seconds(child.pid)
    for _ in range(count):
        # The node's own wallet pays us: sendtoaddress takes about a second on this 100,000
        # transaction wallet (coin selection), so the delay counts from its return.
        txid = node.rpc("sendtoaddress", address.address, "0.01")
        sent = time.perf_counter()
        while not NetworkTransaction.objects.filter(txid=txid).exists():
            time.sleep(0.002)
        delays.append(time.perf_counter() - sent)
    time.sleep(0.5)
    return delays, (cpu_seconds(child.pid) - before) / len(delays)


def _blocks(node, child, wallet, blocks):
    """The listener's CPU per block, and for the first block (the one crediting the deposits)."""
    from ledger.models import Wallet

    def block():
        height = node.rpc("getblockcount") + 1
        node.generate(1)
        while Wallet.objects.get(pk=wallet.pk).last_block_height != height:
            time.sleep(0.005)
        time.sleep(0.3)

    before = cpu_seconds(child.pid)
    block()  # mines and credits the deposits above
    crediting_block = cpu_seconds(child.pid) - before
    before = cpu_seconds(child.pid)
    for _ in range(blocks):
        block()
    return (cpu_seconds(child.pid) - before) / blocks, crediting_block


def _walletnotify_cpu(env, runs):
    """CPU seconds of each `manage.py walletnotify` process, its start-up included."""
    out = []
    for _ in range(runs):
        usage = os.times()
        subprocess.run(
            [sys.executable, "manage.py", "walletnotify", "BTC", "00" * 32],
            cwd=REPO,
            env=env,
            capture_output=True,
        )
        after = os.times()
        out.append(
            after.children_user
            + after.children_system
            - usage.children_user
            - usage.children_system
        )
    return out


def tip_calls(node):
    """What an idle cycle asks the node besides the tip, at this wallet's size: the wallet's
    newest transaction (listtransactions, ours) and the count getwalletinfo computes by walking
    every transaction (the idle cycle before)."""
    from bitcoinrpc.authproxy import AuthServiceProxy

    rpc = AuthServiceProxy(node.url, timeout=600)
    size = rpc.getwalletinfo()["txcount"]

    def best_of(call, rounds=5):
        times = []
        for _ in range(rounds):
            started = time.perf_counter()
            call()
            times.append(time.perf_counter() - started)
        return min(times) * 1000

    newest = best_of(lambda: rpc.listtransactions("*", 5, 0, True))
    walk = best_of(rpc.getwalletinfo)
    print(
        f"wallet: {size:,} transactions | listtransactions * 5 (the idle cycle's): {newest:.2f} ms "
        f"| getwalletinfo (the idle cycle's before): {walk:.2f} ms (best of 5 each)",
        flush=True,
    )
