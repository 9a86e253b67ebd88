"""The project's one exception root. Every error this project raises on purpose derives from
CryptoadminError (backends' BackendError, the books' LedgerError and AmountError, the balance
cache's, the broadcaster's, ...), so a caller can tell "one of our refusals" from a bug with one
`except`. Each keeps its builtin base too (ValueError, LookupError, ...) for existing callers.
A bottom module: every app imports it, it imports nothing of the project.

Not under it, on purpose: cryptoadmin.faults.InjectedFault stands for a crash in tests and must
never be caught where a domain error is handled."""


class CryptoadminError(Exception):
    """Base of every domain error of this project."""


class CloseRefused(CryptoadminError, ValueError):
    """A close by hand refused (of network transactions or of a broadcast); nothing was
    written. The message says why."""
