"""The demo's product: the service's own app, driving the books through /api/v1/ as a real one
would (deposit addresses, withdrawals, locks and unlocks, trades between users), so every
column of the balances query moves while `make run` is up."""

from __future__ import annotations

import random
import uuid

import requests
from django.utils import timezone

from balances.models import ApiToken
from ledger.money import format_units

TOKEN_NAME = "demo traffic"
SCOPES = ["addresses:write", "withdrawals:write", "withdrawals:read", "transfers:write"]
# (from account, to account) moves a product makes between a user's own accounts, as one
# cycle from the balance back to it (each move's destination is the next one's source):
# trading funds in and out, locks for open orders, staking and its activation.
OWN_MOVES = [
    ("balance", "advancedTradingBalance"),
    ("advancedTradingBalance", "advancedTradingLockedBalance"),
    ("advancedTradingLockedBalance", "advancedTradingBalance"),
    ("advancedTradingBalance", "balance"),
    ("balance", "lockedBalance"),
    ("lockedBalance", "balance"),
    ("balance", "stakingLockedBalance"),
    ("stakingLockedBalance", "activeStakingBalance"),
    ("activeStakingBalance", "balance"),
]


class ProductTraffic:
    def __init__(self, base_url: str, users, currency: str = "BTC", decimals: int = 8):
        self.base, self.users, self.currency, self.decimals = base_url, users, currency, decimals
        # A fresh token per run (the raw value is stored nowhere); the previous run's is revoked.
        ApiToken.objects.filter(name=TOKEN_NAME, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        _, self.token = ApiToken.issue(TOKEN_NAME, scopes=SCOPES)
        self.session = requests.Session()

    def post(self, path: str, body: dict, idempotent: bool = True) -> int:
        headers = {"Authorization": f"Bearer {self.token}"}
        if idempotent:
            headers["Idempotency-Key"] = str(uuid.uuid4())
        try:
            answer = self.session.post(self.base + path, json=body, headers=headers, timeout=30)
        except requests.RequestException:
            return 0  # the server is starting or stopping: the next tick tries again
        return answer.status_code

    def amount(self, low: int, high: int) -> str:
        return format_units(random.randint(low, high), self.decimals)

    def new_address(self) -> int:
        body = {"user": random.choice(self.users), "currency": self.currency}
        return self.post("/api/v1/addresses", body, idempotent=False)

    def withdraw(self, address: str) -> int:
        body = {
            "user": random.choice(self.users),
            "currency": self.currency,
            "address": address,
            "amount": self.amount(100_000, 5_000_000),
        }
        return self.post("/api/v1/withdrawals", body)

    def shuffle(self) -> list[int]:
        """Two batches: one user's money along the start of the cycle (it rests in the
        column where the batch stops), and a trade between two users. One with too little on
        a source is refused (422) and writes nothing."""
        user, stop = random.choice(self.users), random.randint(1, len(OWN_MOVES))
        amount = self.amount(100_000, 2_000_000)
        own = [self._move(user, src, user, dst, amount) for src, dst in OWN_MOVES[:stop]]
        seller, buyer = random.sample(list(self.users), 2)
        trade = self._move(
            seller, "advancedTradingBalance", buyer, "advancedTradingBalance", amount
        )
        return [self.transfer(own), self.transfer([trade])]

    def transfer(self, moves: list[dict]) -> int:
        return self.post("/api/v1/transfers", {"currency": self.currency, "transfers": moves})

    @staticmethod
    def _move(from_user, from_account, to_user, to_account, amount: str) -> dict:
        return {
            "from": {"user": from_user, "account": from_account},
            "to": {"user": to_user, "account": to_account},
            "amount": amount,
        }
