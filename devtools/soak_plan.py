"""The soak's plan (bench/soak.py): a seed's actions, a pure function of (seed, steps), the
fault point a step arms, and the report printed at the end."""

import random

USERS = ("u0", "u1", "u2", "u3")
# Weights of the random actions (a step is one of them).
ACTIONS = [
    ("deposit", 5),
    ("withdraw", 5),
    ("mine", 4),
    ("poll", 5),
    ("broadcast", 5),
    ("restart", 1),
    ("reorg", 1),
    ("import", 1),
]
CHILD_MODES = [("clean", 5), ("kill_random", 2), ("kill_at", 2)]


AREAS = {
    "poll": ("poll", "credit", "confirmations", "deposit"),
    "broadcast": ("broadcast", "fee", "send", "settle"),
    "import": ("import",),
}


def plan(seed: int, steps: int) -> list[dict]:
    """The action sequence of a seed: a pure function of (seed, steps), so a seed replays
    the same actions whatever happens while they run."""
    rng = random.Random(seed)
    names, weights = zip(*ACTIONS, strict=True)
    modes, mode_weights = zip(*CHILD_MODES, strict=True)
    out = []
    for _ in range(steps):
        action = rng.choices(names, weights)[0]
        step = {"action": action}
        if action in ("deposit", "withdraw"):
            step["user"] = rng.choice(USERS)
            low, high = (1_000_000, 60_000_000) if action == "deposit" else (100_000, 8_000_000)
            step["amount"] = rng.randrange(low, high)
        elif action == "mine":
            step["blocks"] = rng.randint(1, 3)
        elif action in ("poll", "broadcast", "import"):
            step["mode"] = rng.choices(modes, mode_weights)[0]
            step["delay"] = round(rng.uniform(0.3, 2.0), 2)
            # Which armed point this picks depends on the points in the source; the draw
            # itself does not, so a seed's actions stay the same when points are added.
            step["point_draw"] = rng.randrange(10_000)
            if action == "broadcast":
                step["processes"] = rng.choice((1, 1, 2))
            if action == "import":
                step["amount"] = rng.randrange(1_000_000, 20_000_000)
        elif action == "restart":
            step["while_down"] = rng.choice(("poll", "broadcast"))
        elif action == "reorg":
            step["depth"] = rng.randint(1, 2)
            step["replace"] = rng.random() < 0.5
        out.append(step)
    return out


def armed_point(step: dict, points: list[str]) -> str | None:
    """The fault point a `kill_at` step arms: one of its area's points in the source."""
    candidates = [p for p in points if p.split(".", 1)[0] in AREAS[step["action"]]]
    return candidates[step["point_draw"] % len(candidates)] if candidates else None


def describe(step: dict) -> str:
    return " ".join([step["action"]] + [f"{k}={v}" for k, v in step.items() if k != "action"])


def source_points() -> list[str]:
    from tests.test_fault_harness import source_points as scan

    return scan()


def report(soak, args, violations, seconds) -> int:
    for violation in violations:
        print(f"VIOLATION: {violation}")
    faults = sum(soak.faults.values())
    print(
        f"soak: seed {args.seed} on {args.db}: {seconds:.1f} s; faults: "
        + ", ".join(f"{k} {v}" for k, v in soak.faults.items())
    )
    person, machine = soak.counts
    print(
        f"soak: {len(soak.interrupted)} interrupted broadcast(s): settled by a person {person}, "
        f"by the machine {machine}"
    )
    print(f"soak: {args.steps} steps, {faults} faults, {len(violations)} violations", flush=True)
    return 1 if violations else 0
