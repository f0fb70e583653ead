"""The one exception type a user is meant to read.

Services raise UserError (or a subclass) for anything the person can fix or must know: a bad
argument, a missing file, the Hub being unreachable. Its message says what happened and what to do.
The MCP layer relays it as a tool error; anything else is a bug and is logged as one.
"""


class UserError(Exception):
    """A failure the user can act on; str(error) is the message to show them."""


class NotFoundError(UserError):
    """The thing asked for does not exist (or is not the caller's to see)."""
