from .services import interrupted_broadcasts


def checks():
    ids = list(interrupted_broadcasts().values_list("id", flat=True)[:50])
    return [{"broadcasts": {"ok": not ids, "interrupted": ids}}]
