"""The soak (bench/soak.py), short: one seed on PostgreSQL and one on SQLite, each in its own
process with its own database and two regtest nodes, then the replay guarantee."""

import re
import subprocess

import pytest

from tests.support import PYTHON, REPO

# Seed 104's first ten actions hold every kind of fault (a reorg, a broadcaster killed at a
# fault point right after a withdrawal was queued, our node restarted, an import armed at its
# point (refused: step 3's broadcast is not settled yet), a poller armed at one) besides
# deposits and withdrawals; the interrupted broadcast is settled at the end.
SEED, STEPS = 104, 10
LAST_LINE = re.compile(r"^soak: (\d+) steps, (\d+) faults, (\d+) violations$")
SETTLED_LINE = re.compile(
    r"^soak: (\d+) interrupted broadcast\(s\): settled by a person (\d+), by the machine (\d+)$"
)


def soak(*args, timeout=240):
    result = subprocess.run(
        [PYTHON, "bench/soak.py", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )
    lines = result.stdout.strip().splitlines()
    assert lines and lines[0].startswith(f"soak: seed {SEED} "), (
        result.stdout[-3000:],
        result.stderr[-3000:],
    )
    return result, lines


def assert_clean(result, lines):
    match = LAST_LINE.match(lines[-1])
    assert match, (lines[-5:], result.stderr[-3000:])
    steps, faults, violations = map(int, match.groups())
    assert steps == STEPS and faults >= 3, lines
    found = [line for line in lines if line.startswith("VIOLATION: ")]
    assert len(found) == violations, lines
    assert violations == 0 and result.returncode == 0, "\n".join(lines)
    # Every broadcast seen interrupted was settled, by a person or by the machine. (Seed 104
    # kills a broadcaster at broadcast.after_open today; which point a draw picks moves when
    # points are added, so the count itself is not pinned.)
    settled = SETTLED_LINE.match(lines[-2])
    assert settled, lines[-3:]
    interrupted, person, machine = map(int, settled.groups())
    assert person + machine == interrupted, lines[-2]


@pytest.mark.node
def test_it_keeps_the_invariants_through_a_soak_on_postgresql():
    assert_clean(*soak("--seed", str(SEED), "--steps", str(STEPS), "--db", "postgres"))


@pytest.mark.node
def test_it_keeps_the_invariants_through_a_soak_on_sqlite():
    assert_clean(*soak("--seed", str(SEED), "--steps", str(STEPS), "--db", "sqlite"))


def test_it_replays_the_same_actions_for_the_same_seed():
    first, lines = soak("--seed", str(SEED), "--steps", "30", "--plan", timeout=60)
    again, _ = soak("--seed", str(SEED), "--steps", "30", "--plan", timeout=60)
    assert first.stdout == again.stdout
    assert len(lines) == 31 and "--seed 104 --steps 30" in lines[0]
    other = subprocess.run(
        [PYTHON, "bench/soak.py", "--seed", "105", "--steps", "30", "--plan"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert other.stdout.splitlines()[1:] != lines[1:]


def test_it_plans_every_kind_of_action_and_fault():
    from bench.soak import plan

    steps = plan(SEED, 200)
    assert {s["action"] for s in steps} == {
        "deposit",
        "withdraw",
        "mine",
        "poll",
        "broadcast",
        "restart",
        "reorg",
        "import",
    }
    assert {s.get("mode") for s in steps} >= {"clean", "kill_random", "kill_at"}
    assert any(s.get("processes") == 2 for s in steps)
    assert plan(SEED, 200) == plan(SEED, 200) != plan(SEED + 1, 200)
