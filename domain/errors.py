"""Domain exception families; the API maps each family to one HTTP status, once."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every rule violation raised by an aggregate."""

    code = "domain_error"

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.field = field


class Invalid(DomainError):
    """The request breaks a rule about its own content (limits, formats): 422."""

    code = "invalid"


class Conflict(DomainError):
    """The request is fine but the current state forbids it (sold out, wrong lifecycle): 409."""

    code = "conflict"


class Gone(DomainError):
    """The thing acted on has lapsed (an expired hold): 410."""

    code = "gone"


class NotFound(DomainError):
    """A referenced thing does not exist (or may not be seen): 404."""

    code = "not_found"


class Forbidden(DomainError):
    """The actor may not do this: 403."""

    code = "forbidden"
