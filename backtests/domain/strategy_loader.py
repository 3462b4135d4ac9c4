"""A user's own strategy, loaded from a file (path/to/mine.py, mine.py:NAME) or a module
(package.module:NAME): its code runs, and every problem is one line naming the file."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
import types
from pathlib import Path

from .strategy import Parameter, Strategy, exception_line, strategy_problem

# Files already run in this process (a worker loads one per sweep, not one per chunk), by
# their path and content.
_loaded: dict[tuple[str, str], types.ModuleType] = {}


def is_user_reference(text: str) -> bool:
    """A file or a module rather than a built-in strategy's name."""
    return any(mark in text for mark in ("/", "\\", ":", ".")) or text.endswith(".py")


def strategy_load(reference: str, *, digest: str = "") -> Strategy:
    """The strategy `reference` names: in a file (its one Strategy subclass, or the one after
    ':'), or in an importable module. With `digest`, the file must still be the one it was
    (a sweep's workers run the code its command checked)."""
    text = reference.strip()
    target, name = text, ""
    head, colon, tail = text.rpartition(":")
    if colon and (tail.isidentifier() or not tail) and head:
        target, name = head, tail
        if not name:
            raise strategy_problem(text, "name a strategy after ':' (mine.py:MyStrategy)")
    if target.endswith(".py") or "/" in target or "\\" in target:
        module, digest, canonical = _file_module(target, digest)
    else:
        module, canonical = _importable_module(target), target
    cls = _strategy_class(module, target, name)
    problem = _contract_problem(cls)
    if problem:
        raise strategy_problem(target, problem)
    try:
        return cls(reference=f"{canonical}:{name}" if name else canonical, digest=digest)
    except Exception as exc:  # the user's own __init__
        raise strategy_problem(
            target, f"{cls.__name__}() raised {exception_line(exc, _file_of(module))}"
        ) from None


def strategy_classes(module: types.ModuleType) -> list[type[Strategy]]:
    """The Strategy subclasses a module defines (not those it imports), in the order written."""
    return [
        value
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, Strategy)
        and value is not Strategy
        and value.__module__ == module.__name__
    ]


def _file_module(target: str, digest: str) -> tuple[types.ModuleType, str, str]:
    """Run a file as a module of its own (once per content): (module, SHA-256, its path)."""
    path = Path(target).expanduser().absolute()
    if not path.exists():
        raise strategy_problem(target, "no such file")
    if path.is_dir():
        raise strategy_problem(target, "is a folder: name a .py file")
    try:
        source = path.read_bytes()
    except OSError as exc:
        raise strategy_problem(target, f"cannot be read ({exc.strerror})") from None
    found = hashlib.sha256(source).hexdigest()
    if digest and digest != found:
        raise strategy_problem(target, "the file changed since the backtest began: run it again")
    key = (str(path), found)
    if key in _loaded:
        return _loaded[key], found, str(path)
    try:
        code = compile(source, str(path), "exec")
    except SyntaxError as exc:
        raise strategy_problem(target, f"syntax error at line {exc.lineno}: {exc.msg}") from None
    except ValueError as exc:  # null bytes
        raise strategy_problem(target, f"is not Python source ({exc})") from None
    module_name = "ibdata_strategy_" + hashlib.sha1(str(path).encode()).hexdigest()[:12]
    module = types.ModuleType(module_name)
    module.__file__ = str(path)
    sys.modules[module_name] = module  # dataclasses and pickling look their module up there
    try:
        exec(code, module.__dict__)
    except Exception as exc:  # the user's module, whatever it raised
        sys.modules.pop(module_name, None)
        raise strategy_problem(
            target, f"loading it raised {exception_line(exc, str(path))}"
        ) from None
    _loaded[key] = module
    return module, found, str(path)


def _importable_module(target: str) -> types.ModuleType:
    if not all(part.isidentifier() for part in target.split(".")):
        raise strategy_problem(
            target, "not a strategy: use sma, donchian, path/to/mine.py or package.module:NAME"
        )
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as exc:
        if exc.name and (target == exc.name or target.startswith(exc.name + ".")):
            raise strategy_problem(
                target, f"no module named {exc.name!r} (is it installed, or on PYTHONPATH?)"
            ) from None
        raise strategy_problem(target, f"importing it raised {exception_line(exc, '')}") from None
    except Exception as exc:  # the user's module, whatever it raised
        file = _module_file(target)
        raise strategy_problem(target, f"importing it raised {exception_line(exc, file)}") from None


def _strategy_class(module: types.ModuleType, target: str, name: str) -> type[Strategy]:
    classes = strategy_classes(module)
    names = ", ".join(cls.__name__ for cls in classes)
    if name:
        cls = getattr(module, name, None)
        if isinstance(cls, type) and issubclass(cls, Strategy) and cls is not Strategy:
            return cls
        found = f"it defines {names}" if classes else "it defines none"
        raise strategy_problem(target, f"has no strategy {name} ({found})")
    if not classes:
        raise strategy_problem(
            target,
            "defines no strategy: a class deriving from backtests.domain.strategies.Strategy "
            "(docs/backtests.md, 'Your own strategy')",
        )
    if len(classes) > 1:
        raise strategy_problem(
            target,
            f"defines {len(classes)} strategies ({names}): name one as {target}:"
            f"{classes[0].__name__}",
        )
    return classes[0]


def _contract_problem(cls: type[Strategy]) -> str:
    """What a strategy class lacks of the contract ('' when nothing)."""
    for method, signature in (
        ("signals", "(self, bars, params, cache)"),
        ("warmup", "(self, params)"),
    ):
        if getattr(cls, method) is getattr(Strategy, method):
            return f"{cls.__name__} has no {method}{signature} method"
        if not callable(getattr(cls, method)):
            return f"{cls.__name__}.{method} is not a method"
    parameters = cls.parameters
    if not isinstance(parameters, tuple | list) or not all(
        isinstance(p, Parameter) for p in parameters
    ):
        return f"{cls.__name__}.parameters must be a tuple of Parameter(name, default, ...)"
    names = [p.name for p in parameters]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        return f"{cls.__name__} declares the parameter {twice[0]!r} twice"
    return ""


def _file_of(module: types.ModuleType) -> str:
    return getattr(module, "__file__", "") or ""


def _module_file(target: str) -> str:
    """The file of the module `target` names, or '' (to find its line in a traceback)."""
    try:
        spec = importlib.util.find_spec(target)
    except (ImportError, ValueError):
        return ""
    return (spec.origin or "") if spec else ""
