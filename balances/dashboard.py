"""The balance cache's figures for this process: shown on the "User balances" page (a
developer's view, kept off the admin home, which leads with what needs a person)."""


def cache_figures() -> dict:
    from .cache import existing_cache, get_listener

    cache = existing_cache()
    return {
        "stats": cache.stats() if cache is not None else None,
        "mode": getattr(cache, "mode", None),
        "listener": get_listener() if cache is not None else None,
    }
