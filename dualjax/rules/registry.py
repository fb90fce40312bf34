"""Rules by name: the one list of names (CLI flags, the V-JEPA config, docs all read it here).

``register(name, factory)`` adds a rule factory (a function of keyword options returning a
:class:`~dualjax.rules.base.TeacherRule`); ``get(name, **options)`` builds one (the same object
for the same hashable options, so compiled programs keyed on the rule are reused);
``names()`` lists them in registration order. The built-ins (``plain``, ``sg``, ``ema`` with
``momentum``, ``directpred`` with ``eps``, ``freq``, ``beta``, ``momentum``) are registered when
:mod:`dualjax.rules` is imported. Everything past the command line takes rule *objects*; a
name is resolved once, here.
"""

from __future__ import annotations

import inspect
from typing import Callable

from dualjax.rules.base import TeacherRule
from dualjax.rules.builtin import memoized

Factory = Callable[..., TeacherRule]
_FACTORIES: dict[str, Factory] = {}


def register(name: str, factory: Factory, *, replace: bool = False) -> Factory:
    """Register ``factory`` under ``name`` (a ValueError if the name is taken, unless ``replace``).
    Returns the factory, so it can be used as ``register("mine", mine)`` after its definition."""
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"a rule name must be an identifier-like string, got {name!r}")
    if not callable(factory):
        raise ValueError(f"the factory of rule {name!r} must be callable, got {factory!r}")
    if name in _FACTORIES and not replace:
        raise ValueError(f"rule {name!r} is already registered; pass replace=True to replace it")
    _FACTORIES[name] = memoized(factory)
    return factory


def unregister(name: str) -> None:
    """Remove a registered rule (tests and notebooks that register their own)."""
    _factory(name)
    del _FACTORIES[name]


def names() -> tuple[str, ...]:
    """The registered rule names, in registration order."""
    return tuple(_FACTORIES)


def _factory(name: str) -> Factory:
    try:
        return _FACTORIES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown rule {name!r}; registered rules: {', '.join(names())}") from None


def options(name: str) -> tuple[str, ...]:
    """The keyword options the factory of ``name`` takes (e.g. ``('momentum',)`` for ``ema``)."""
    params = inspect.signature(_factory(name)).parameters.values()
    return tuple(p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD))


def get(name: str, **kwargs) -> TeacherRule:
    """The rule ``name`` built with ``kwargs``; an unknown name or option is a ValueError naming
    the registered rules / the rule's options."""
    factory = _factory(name)
    unknown = set(kwargs) - set(options(name))
    takes_any = any(p.kind is p.VAR_KEYWORD for p in inspect.signature(factory).parameters.values())
    if unknown and not takes_any:
        raise ValueError(f"rule {name!r} takes no option {sorted(unknown)}; its options: {list(options(name))}")
    rule = factory(**kwargs)
    if not isinstance(rule, TeacherRule):
        raise ValueError(f"the factory of rule {name!r} returned {type(rule).__name__}, not a TeacherRule")
    return rule


def resolve(name: str, **available) -> TeacherRule:
    """The rule ``name`` with those of the ``available`` options its factory takes: how a command
    line or a config with one ``--alpha`` for every rule builds each (``sg`` ignores ``momentum``)."""
    accepted = options(name)
    return get(name, **{k: v for k, v in available.items() if k in accepted})
