from .selections import interrupted_broadcasts, needing_attention


def checks():
    ids = list(interrupted_broadcasts().values_list("id", flat=True)[:50])
    out = {"ok": not ids, "interrupted": ids}
    flagged = list(needing_attention().values_list("id", flat=True)[:50])
    if flagged:  # a late reply after a close by hand: a person must look (maybe paid twice)
        out.update(ok=False, attention=flagged)
    return [{"broadcasts": out}]
