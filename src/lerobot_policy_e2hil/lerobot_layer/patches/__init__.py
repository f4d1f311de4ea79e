"""The patch layer: every change this plugin makes to LeRobot's module and class attributes.

:data:`.table.ROWS` declares them (target, replacement kind, reason, LeRobot issue, roles);
:func:`install` applies the rows of one role (``"import"``, ``"learner"``, ``"actor"``,
``"record"``) once, in table order, after checking the LeRobot version and every target's
signature; features add their behaviour with :func:`hook` (one wrapper per target, their hooks
nested in the row's declared order). Nothing else in this package assigns onto LeRobot objects
(tests/test_patches.py checks it). The table as Markdown: docs/patches.md (:func:`markdown_table`).
"""

from __future__ import annotations

from .core import (
    LEROBOT_VERSIONS,
    MARKER,
    ROLES,
    Call,
    Row,
    check_row,
    check_version,
    declare,
    hook,
    hooked,
    isolated_hooks,
    lerobot_version,
    unhook,
)
from .core import install_rows as _install_rows
from .core import uninstall_rows as _uninstall_rows
from .table import ROWS

declare(ROWS)

__all__ = [
    "LEROBOT_VERSIONS",
    "MARKER",
    "ROLES",
    "ROWS",
    "Call",
    "Row",
    "check_row",
    "check_version",
    "hook",
    "hooked",
    "install",
    "isolated_hooks",
    "lerobot_version",
    "markdown_table",
    "uninstall",
    "unhook",
]


def install(role: str) -> list[str]:
    """Install the rows of ``role`` (idempotent: an installed row is left as it is).

    Args:
        role: ``"import"``, ``"learner"``, ``"actor"`` or ``"record"``.

    Returns:
        The targets this call installed.

    Raises:
        SetupError: An unsupported LeRobot, or a target missing or changed (one paragraph naming
            it; nothing is installed).
    """
    return _install_rows(ROWS, role)


def uninstall() -> None:
    """Put back LeRobot's objects of every installed row (tests)."""
    _uninstall_rows(ROWS)


def markdown_table(rows: tuple[Row, ...] = ROWS) -> str:
    """The table as Markdown, one line per row (what docs/patches.md shows)."""
    lines = [
        "| # | target | kind | roles | hook layers (outermost first) | why | LeRobot issue |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for number, row in enumerate(rows, 1):
        target = row.target.replace("lerobot.", "", 1)
        members = "" if row.kind == "wrap" else " (" + ", ".join(f"`{m}`" for m, _ in row.signature) + ")"
        owner = "LeRobot's" if row.target.startswith("lerobot.") else "the original's"
        why = row.reason + (f". **Replaces** {owner} call in {row.replaces}" if row.replaces else "")
        cells = [
            str(number),
            f"`{target}`{members}",
            row.kind,
            ", ".join(row.roles),
            ", ".join(f"`{layer}`" for layer in row.layers),
            why.replace("|", "\\|"),
            row.upstream or "-",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
