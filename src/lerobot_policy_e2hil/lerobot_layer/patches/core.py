"""How a row of the patch table is checked, installed once, and run through its hooks.

A row's target is a LeRobot function, method, class or module attribute. Installing it puts a
stand-in there that calls LeRobot's object through the hooks the features registered
(:func:`hook`), outermost first in the row's declared ``layers`` order, whatever order they
registered in. With no hook registered a stand-in calls LeRobot's object directly.

* ``wrap``: a function, method or static method; the hook point is the target itself.
* ``subclass``: a class; the stand-in is a subclass whose listed ``members`` (methods or class
  methods) are hook points ``<target>.<member>``.
* ``proxy``: a module; the stand-in forwards every attribute to it, and its listed ``members``
  (functions) are hook points ``<target>.<member>``.

A hook is ``hook(call) -> result``; ``call.arguments`` holds the call's arguments by LeRobot's
parameter names (defaults filled in), checked against the row at install, and
``call.proceed(**changes)`` calls the next layer (in the end LeRobot's object) with some of them
replaced. A hook that does not proceed replaces LeRobot's object for that call.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from ...errors import SetupError

#: The LeRobot releases the rows were checked against: >= the first, < the second.
LEROBOT_RANGE = ((0, 6, 1), (0, 7, 0))
LEROBOT_VERSIONS = ">=0.6.1,<0.7"
#: Who installs rows: a plain import of the plugin, the learner, the actor, the SO101 recorder.
ROLES = ("import", "learner", "actor", "record")
KINDS = ("wrap", "subclass", "proxy")
#: Attribute every stand-in carries: the target it was installed at.
MARKER = "__e2hil_patch__"


@dataclass(frozen=True)
class Row:
    """One change to a LeRobot object."""

    # Dotted path of the LeRobot attribute replaced
    target: str
    # "wrap", "subclass" or "proxy" (module docstring)
    kind: str
    # Expected parameter names: of the target ("wrap") or of each member, as (member, params) pairs
    signature: tuple[Any, ...]
    # Hook layer names, outermost first (each feature registers under its own name)
    layers: tuple[str, ...]
    # Roles that install it (:data:`ROLES`)
    roles: tuple[str, ...]
    # Why the change is needed
    reason: str
    # The LeRobot issue or PR behind it, "" where none
    upstream: str = ""
    # The layers that replace LeRobot's object instead of calling it, and why
    replaces: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Row {self.target}: kind={self.kind!r} is invalid; allowed values: {KINDS}")
        if not set(self.roles) <= set(ROLES) or not self.roles:
            raise ValueError(f"Row {self.target}: roles={self.roles!r} is invalid; allowed values: {ROLES}")

    def points(self) -> tuple[str, ...]:
        """The hook points of the row."""
        if self.kind == "wrap":
            return (self.target,)
        return tuple(f"{self.target}.{member}" for member, _ in self.signature)

    def expected(self) -> dict[str, tuple[str, ...]]:
        """Expected parameter names by hook point."""
        if self.kind == "wrap":
            return {self.target: tuple(self.signature)}
        return {f"{self.target}.{member}": tuple(params) for member, params in self.signature}


@dataclass
class _State:
    hooks: dict[tuple[str, str], Callable[[Call], Any]] = field(default_factory=dict)
    installed: dict[str, tuple[Any, Any]] = field(default_factory=dict)


_STATE = _State()
_POINT_LAYERS: dict[str, tuple[str, ...]] = {}


class Call:
    """One call at a hook point, as a hook sees it."""

    def __init__(self, bound: inspect.BoundArguments, proceed: Callable[[inspect.BoundArguments], Any]):
        self._bound = bound
        self._proceed = proceed

    @property
    def arguments(self) -> dict[str, Any]:
        """The arguments by parameter name (a copy)."""
        return dict(self._bound.arguments)

    def proceed(self, /, **changes: Any) -> Any:
        """Call the next layer with ``changes`` replacing arguments of the same names."""
        unknown = set(changes) - set(self._bound.arguments)
        if unknown:
            raise TypeError(f"no parameter(s) {sorted(unknown)} in {self._bound.signature}")
        arguments = {**self._bound.arguments, **changes}
        return self._proceed(inspect.BoundArguments(self._bound.signature, arguments))

    def next_function(self) -> Callable[..., Any]:
        """The next layer as a function with the target's signature."""

        def call_next(*args: Any, **kwargs: Any) -> Any:
            bound = self._bound.signature.bind(*args, **kwargs)
            bound.apply_defaults()
            return self._proceed(bound)

        call_next.__signature__ = self._bound.signature  # type: ignore[attr-defined]
        return call_next


def hook(point: str, layer: str, function: Callable[[Call], Any]) -> None:
    """Register ``function`` at ``point`` as ``layer``, replacing an earlier one of the same layer.

    Args:
        point: A hook point of the table (``Row.points``).
        layer: One of the row's declared layers.
        function: ``function(call) -> result``.

    Raises:
        ValueError: The point or the layer is not declared in the table.
    """
    layers = _POINT_LAYERS.get(point)
    if layers is None:
        raise ValueError(f"{point} is not a hook point of the patch table")
    if layer not in layers:
        raise ValueError(f"layer {layer!r} is not declared for {point}; allowed values: {layers}")
    _STATE.hooks[point, layer] = function


def unhook(point: str, layer: str) -> None:
    """Remove the hook of ``layer`` at ``point`` (if any)."""
    _STATE.hooks.pop((point, layer), None)


def hooked(point: str, layer: str) -> Callable[[Call], Any] | None:
    """The hook registered at ``point`` as ``layer``, or None."""
    return _STATE.hooks.get((point, layer))


@contextlib.contextmanager
def isolated_hooks() -> Iterator[None]:
    """Hooks registered inside the block are gone after it (earlier ones are back): for tests."""
    saved = dict(_STATE.hooks)
    try:
        yield
    finally:
        _STATE.hooks.clear()
        _STATE.hooks.update(saved)


def declare(rows: tuple[Row, ...]) -> None:
    """Make the rows' hook points known to :func:`hook`."""
    for row in rows:
        for point in row.points():
            _POINT_LAYERS[point] = row.layers


def _run(
    point: str, original: Callable[..., Any], signature: inspect.Signature, args: tuple, kwargs: dict
) -> Any:
    layers = [_STATE.hooks[point, layer] for layer in _POINT_LAYERS[point] if (point, layer) in _STATE.hooks]
    if not layers:
        return original(*args, **kwargs)
    bound = signature.bind(*args, **kwargs)
    bound.apply_defaults()

    def step(index: int, arguments: inspect.BoundArguments) -> Any:
        if index == len(layers):
            return original(*arguments.args, **arguments.kwargs)
        return layers[index](Call(arguments, functools.partial(step, index + 1)))

    return step(0, bound)


def resolve(target: str) -> tuple[Any, str, Any]:
    """``(owner, attribute name, current value)`` of a dotted path; the value is None when absent.

    Raises:
        AttributeError: The owner (module or class) of the attribute does not exist.
    """
    parts = target.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            owner = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:-1]:
            owner = getattr(owner, name)
        return owner, parts[-1], inspect.getattr_static(owner, parts[-1], None)
    raise AttributeError(f"no module in {target}")


def lerobot_version() -> str:
    """The installed LeRobot version ("not installed" when absent)."""
    try:
        return version("lerobot")
    except PackageNotFoundError:
        return "not installed"


def _params(obj: Any) -> tuple[str, ...] | None:
    try:
        return tuple(inspect.signature(obj).parameters)
    except (TypeError, ValueError):
        return None


def _unwrap_static(value: Any) -> Any:
    return value.__func__ if isinstance(value, staticmethod) else value


def check_row(row: Row) -> str | None:
    """The one-paragraph error for a row whose target is missing or changed, None when it fits."""
    try:
        _, _, current = resolve(row.target)
    except AttributeError:
        current = None
    original = _original(row, current)
    problem = None if original is not None else "it does not exist"
    for point, expected in row.expected().items():
        if problem is not None:
            break
        obj = original if row.kind == "wrap" else getattr(original, point.rsplit(".", 1)[1], None)
        found = None if obj is None else _params(obj)
        if obj is None:
            problem = f"{point} does not exist"
        elif found != expected:
            problem = f"{point} has the parameters {found}, where the patch expects {expected}"
    if problem is None:
        return None
    return (
        f"the E2HiL patch of LeRobot's {row.target} cannot be installed: {problem} (installed LeRobot "
        f"{lerobot_version()}; the patch table was written for LeRobot {LEROBOT_VERSIONS}). Install a "
        f"supported LeRobot (pip install 'lerobot{LEROBOT_VERSIONS}') or update the row in "
        "lerobot_policy_e2hil/lerobot_layer/patches/table.py"
    )


def _original(row: Row, current: Any) -> Any:
    """LeRobot's object at the row's target: ``current``, or what the installed stand-in wraps."""
    value = _unwrap_static(current)
    return _unwrap_static(vars(value)["__wrapped__"]) if _is_installed(row, current) else value


def check_version() -> str | None:
    """The error for an unsupported installed LeRobot, None when supported."""
    installed = lerobot_version()
    release = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", installed)
    if release is not None:
        numbers = tuple(int(part or 0) for part in release.groups())
        if LEROBOT_RANGE[0] <= numbers < LEROBOT_RANGE[1]:
            return None
    return (
        f"the E2HiL plugin supports LeRobot {LEROBOT_VERSIONS}, and LeRobot {installed} is installed. "
        f"Install a supported one: pip install 'lerobot{LEROBOT_VERSIONS}'"
    )


def _is_installed(row: Row, value: Any) -> bool:
    value = _unwrap_static(value)
    return value is not None and hasattr(value, "__dict__") and vars(value).get(MARKER) == row.target


def _wrapper(point: str, original: Callable[..., Any]) -> Callable[..., Any]:
    signature = inspect.signature(original)

    @functools.wraps(original)
    def stand_in(*args: Any, **kwargs: Any) -> Any:
        return _run(point, original, signature, args, kwargs)

    return stand_in


def _build(row: Row, current: Any) -> Any:
    if row.kind == "wrap":
        is_static = isinstance(current, staticmethod)
        stand_in = _wrapper(row.target, _unwrap_static(current))
        setattr(stand_in, MARKER, row.target)
        return staticmethod(stand_in) if is_static else stand_in
    if row.kind == "subclass":
        namespace: dict[str, Any] = {"__module__": current.__module__, "__doc__": current.__doc__}
        for member, _ in row.signature:
            static = inspect.getattr_static(current, member)
            point = f"{row.target}.{member}"
            if isinstance(static, classmethod):
                bound = getattr(current, member)
                namespace[member] = classmethod(_class_member(point, bound))
            else:
                namespace[member] = _wrapper(point, getattr(current, member))
        namespace[MARKER] = row.target
        namespace["__wrapped__"] = current
        return type(current.__name__, (current,), namespace)
    proxy = _ModuleProxy(current)
    for member, _ in row.signature:
        setattr(proxy, member, _wrapper(f"{row.target}.{member}", getattr(current, member)))
    setattr(proxy, MARKER, row.target)
    proxy.__wrapped__ = current
    return proxy


def _class_member(point: str, bound: Callable[..., Any]) -> Callable[..., Any]:
    """A class method that runs the hooks of ``point`` and then LeRobot's class method (its own class)."""
    signature = inspect.signature(bound)

    def stand_in(cls: type, *args: Any, **kwargs: Any) -> Any:
        return _run(point, bound, signature, args, kwargs)

    functools.update_wrapper(stand_in, bound)
    return stand_in


class _ModuleProxy:
    """Stands in for a module: every attribute not set on it is the module's."""

    def __init__(self, module: Any):
        self.__module = module

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__module, name)

    def __repr__(self) -> str:
        return f"<E2HiL patch of {self.__module!r}>"


def install_rows(rows: tuple[Row, ...], role: str) -> list[str]:
    """Install the rows of ``role`` that are not installed yet, in table order, after checking them all.

    Args:
        rows: The table.
        role: One of :data:`ROLES`.

    Returns:
        The targets installed by this call (empty when all were installed already).

    Raises:
        SetupError: An unsupported LeRobot version, or a target missing or with another signature
            (nothing is installed then).
        ValueError: An unknown role.
    """
    if role not in ROLES:
        raise ValueError(f"role={role!r} is invalid; allowed values: {ROLES}")
    selected = [row for row in rows if role in row.roles]
    problem = check_version()
    problems = [problem] if problem else [p for p in map(check_row, selected) if p]
    if problems:
        raise SetupError(problems[0])
    done = []
    for row in selected:
        owner, name, current = resolve(row.target)
        if _is_installed(row, current):
            continue
        stand_in = _build(row, current)
        _STATE.installed[row.target] = (owner, current)
        setattr(owner, name, stand_in)
        done.append(row.target)
    return done


def uninstall_rows(rows: tuple[Row, ...]) -> None:
    """Put LeRobot's objects back where rows were installed (for tests)."""
    for row in reversed(rows):
        entry = _STATE.installed.pop(row.target, None)
        if entry is not None:
            owner, original = entry
            setattr(owner, row.target.rsplit(".", 1)[1], original)
