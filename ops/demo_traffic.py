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
# (from account, to account) moves a product makes between a user's own accounts: trading
# funds in and out, locks for open orders, staking and its activation, and back.
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
        """A few single-move requests: between a user's own accounts, and a trade between two
        users. One with too little on its source is refused (422) and writes nothing."""
        statuses = []
        for _ in range(2):
            user = random.choice(self.users)
            source, destination = random.choice(OWN_MOVES)
            statuses.append(self.transfer([self._move(user, source, user, destination)]))
        seller, buyer = random.sample(list(self.users), 2)
        trade = self._move(seller, "advancedTradingBalance", buyer, "advancedTradingBalance")
        statuses.append(self.transfer([trade]))
        return statuses

    def transfer(self, moves: list[dict]) -> int:
        return self.post("/api/v1/transfers", {"currency": self.currency, "transfers": moves})

    def _move(self, from_user, from_account, to_user, to_account) -> dict:
        return {
            "from": {"user": from_user, "account": from_account},
            "to": {"user": to_user, "account": to_account},
            "amount": self.amount(100_000, 2_000_000),
        }
