"""One exception tree for the runner, and what each means to a client.

Every error a request can meet derives from `WorkshopError`, which carries the
HTTP status and the stable `error` code of the JSON envelope. The app maps the
whole tree in one place; anything else that escapes is a bug (a 500).
"""

from __future__ import annotations

import errno


class WorkshopError(Exception):
    """Base of every error the runner reports to a client."""

    status = 500
    code = "internal"

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}


# -- the client's doing (4xx) ------------------------------------------------------------------------


class ClientError(WorkshopError):
    status = 400
    code = "bad_request"


class BadRequest(ClientError):
    def __init__(self, detail: str, code: str = "bad_request") -> None:
        super().__init__(detail)
        self.code = code


class EditingDisabled(ClientError):
    status = 403
    code = "editing_disabled"


class UnknownSnippet(ClientError):
    status = 404
    code = "unknown_snippet"


class TooLarge(ClientError):
    status = 413
    code = "too_large"


class UnsupportedMediaType(ClientError):
    status = 415
    code = "unsupported_media_type"


class Refused(ClientError):
    """Not now: the client may retry after `retry_after` seconds (a 429)."""

    status = 429
    code = "busy"

    def __init__(self, detail: str, retry_after: float, code: str | None = None) -> None:
        self.retry_after = max(1, round(retry_after + 0.49))
        super().__init__(detail, headers={"Retry-After": str(self.retry_after)})
        if code:
            self.code = code


class Busy(Refused):
    """Too many runs waiting."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"the runner is busy; retry in {max(1, round(retry_after + 0.49))} s", retry_after)


# -- the runner's side (5xx) --------------------------------------------------------------------------


class ServiceUnavailable(WorkshopError):
    """A part the run needs is down or full; retrying shortly may work (a 503)."""

    status = 503
    code = "unavailable"

    def __init__(self, detail: str, retry_after: int = 2) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


class PostgresUnavailable(ServiceUnavailable):
    code = "database_unavailable"


class SandboxFailed(ServiceUnavailable):
    """A sandbox could not be prepared although PostgreSQL is up (the child died, a limit refused it)."""

    code = "sandbox_unavailable"


class CloneSpaceFull(ServiceUnavailable):
    """No room left for another run's database."""

    code = "clone_space_full"


DISK_FULL_SQLSTATE = "53100"


def as_clone_space_full(error: BaseException) -> CloneSpaceFull | None:
    """The CloneSpaceFull a failure to make a run's database amounts to, if it is one.

    PostgreSQL reports a full tablespace as SQLSTATE 53100 ("could not write ...: No
    space left on device"); the runner's own writes as OSError ENOSPC. Either is a
    503 the operator can act on (free the clone folder), never a 500.
    """
    if isinstance(error, CloneSpaceFull):
        return error
    full = getattr(error, "sqlstate", None) == DISK_FULL_SQLSTATE
    full = full or (isinstance(error, OSError) and error.errno == errno.ENOSPC)
    full = full or "No space left on device" in str(error)
    if not full:
        return None
    return CloneSpaceFull(f"no room left for another run's database: {error}")


class Draining(ServiceUnavailable):
    """The runner is shutting down (SIGTERM): it finishes its runs and admits none (another replica may)."""

    code = "draining"
