"""The error every config of this package raises for an invalid value."""

from __future__ import annotations

from draccus.utils import ParsingError


class ConfigError(ParsingError):
    """An invalid config value; the message names the field and the allowed values.

    Derived from draccus' ``ParsingError`` rather than ``ValueError``: draccus replaces a
    ``ValueError`` raised while it builds a dataclass with a generic "Couldn't instantiate
    class" message, and it shows this one verbatim, so the user sees which field is wrong.
    """
