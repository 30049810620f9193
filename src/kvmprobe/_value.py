"""Value classes at a fraction of the import cost: ``dataclass``, ``field``, ``replace``, ``NamedTuple``.

Imports nothing from the package, and of the standard library only ``collections`` and
``operator`` (which the interpreter's own start-up paths load anyway). ``dataclasses`` imports ``inspect`` and through it
``ast``, ``dis`` and ``tokenize``; ``typing`` brings ``re``: on a command that runs in 30 ms they
were a third of it (issue #19). Modules write, for the type checker and for the run time::

    TYPE_CHECKING = False
    if TYPE_CHECKING:
        from dataclasses import dataclass, field
    else:
        from ._value import dataclass, field

mypy checks them as the standard decorators, and at run time these behave the same for what the
package uses: ``frozen``, ``eq``, ``repr``, defaults and ``default_factory``, ``init``/``repr``/
``compare`` per field, ``__post_init__``, ``ClassVar`` annotations left out, ``__match_args__``,
equality and hashing over the compared fields, and ``dataclasses.FrozenInstanceError`` on an
assignment to a frozen instance. The ``dataclasses`` functions (``replace``, ``fields``,
``asdict``, ``is_dataclass``) work on these classes too: the first time one of them asks for a
class's ``__dataclass_fields__``, that class gets the standard ``Field`` objects, made by
``dataclasses`` itself from the same fields (so only a program that uses them pays for
``dataclasses``). :func:`replace` here does what ``dataclasses.replace`` does, without it.

``NamedTuple`` is ``typing.NamedTuple``'s class syntax over ``collections.namedtuple``, which is
all ``typing.NamedTuple`` makes at run time.
"""

from __future__ import annotations

import collections
import operator

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Tuple, TypeVar

    _C = TypeVar("_C")

__all__ = ["MISSING", "NamedTuple", "Shared", "dataclass", "field", "replace"]


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


#: No default given (as ``dataclasses.MISSING``).
MISSING: Any = _Missing()


class Field:
    """One field's options, as ``dataclasses.field`` takes them."""

    __slots__ = ("compare", "default", "default_factory", "init", "name", "repr", "type")

    def __init__(self, default: Any, default_factory: Any, init: bool, repr: bool, compare: bool) -> None:
        self.default = default
        self.default_factory = default_factory
        self.init = init
        self.repr = repr
        self.compare = compare
        self.name = ""
        self.type = ""


def field(
    *, default: Any = MISSING, default_factory: Any = MISSING, init: bool = True, repr: bool = True,
    compare: bool = True,
) -> Any:
    """``dataclasses.field`` for :func:`dataclass` classes.

    Example:
        >>> @dataclass(frozen=True)
        ... class Box:
        ...     items: list = field(default_factory=list)
        >>> Box().items, Box([1]) == Box([1])
        ([], True)
    """
    if default is not MISSING and default_factory is not MISSING:
        raise ValueError("cannot specify both default and default_factory")
    return Field(default, default_factory, init, repr, compare)


def _is_classvar(annotation: Any) -> bool:
    text = annotation if isinstance(annotation, str) else getattr(annotation, "_name", "") or ""
    return text.startswith(("ClassVar", "typing.ClassVar", "t.ClassVar"))


def _fields_of(cls: type) -> List[Field]:
    found: List[Field] = []
    namespace = cls.__dict__
    for name, annotation in namespace.get("__annotations__", {}).items():
        if _is_classvar(annotation):
            continue
        default = namespace.get(name, MISSING)
        if type(default).__name__ == "member_descriptor":  # a __slots__ entry, not a default
            default = MISSING
        spec = default if isinstance(default, Field) else Field(default, MISSING, True, True, True)
        spec.name, spec.type = name, annotation
        found.append(spec)
        if isinstance(default, Field):  # as dataclasses: the class keeps a plain default, not the Field
            if default.default is MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, default.default)
    return found


def _init_source(cls: type, specs: List[Field], frozen: bool) -> str:
    """The source of ``__init__`` for ``cls``: the one method worth compiling (it runs per instance)."""
    params, body = [], []
    seen_default = False
    for spec in specs:
        name = spec.name
        if spec.init:
            if spec.default is not MISSING:
                params.append(f"{name}=_d_{name}")
                seen_default = True
            elif spec.default_factory is not MISSING:
                params.append(f"{name}=_MISSING")
                seen_default = True
            elif seen_default:
                raise TypeError(f"non-default argument {name!r} follows default argument")
            else:
                params.append(name)
            value = f"_f_{name}() if {name} is _MISSING else {name}" if spec.default_factory is not MISSING else name
        elif spec.default_factory is not MISSING:
            value = f"_f_{name}()"
        elif spec.default is not MISSING:
            value = f"_d_{name}"
        else:
            continue
        body.append(f"  _d[{name!r}] = {value}" if frozen else f"  self.{name} = {value}")
    if "__post_init__" in cls.__dict__:
        body.append("  self.__post_init__()")
    lines = [f"def __init__(self, {', '.join(params)}):" if params else "def __init__(self):"]
    lines += (["  _d = self.__dict__"] if frozen else []) + body + ["  pass"]
    return "\n".join(lines) + "\n"


def _compiled_init(cls: type, specs: List[Field], frozen: bool) -> Callable[..., None]:
    namespace: Dict[str, Any] = {"_MISSING": MISSING, "__name__": cls.__module__}
    for spec in specs:
        if spec.default is not MISSING:
            namespace[f"_d_{spec.name}"] = spec.default
        if spec.default_factory is not MISSING:
            namespace[f"_f_{spec.name}"] = spec.default_factory
    exec(_init_source(cls, specs, frozen), namespace)  # noqa: S102 - source built from the field names
    init: Callable[..., None] = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    return init


# Instances made through the generic __init__ before the class gets a compiled one.
_COMPILE_AFTER = 32


def _first_init(cls: type, specs: List[Field], frozen: bool) -> Callable[..., None]:
    """A generic ``__init__``, which compiles the class's own one once the class has made
    :data:`_COMPILE_AFTER` instances. Compiling costs about 100 µs a class (a command that makes
    a few instances of twenty classes would pay 2 ms); the compiled one is three times faster per
    instance, which is what a fleet that loads thousands of hosts needs."""
    names = tuple(spec.name for spec in specs if spec.init)
    known = frozenset(names)
    rest = tuple(
        (spec.name, spec.init, spec.default, spec.default_factory)
        for spec in specs
        if spec.init or spec.default is not MISSING or spec.default_factory is not MISSING
    )
    post_init = "__post_init__" in cls.__dict__
    made = [0]

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        made[0] += 1
        if made[0] > _COMPILE_AFTER:
            init = _compiled_init(cls, specs, frozen)
            type.__setattr__(cls, "__init__", init)
            init(self, *args, **kwargs)
            return
        if len(args) > len(names):
            raise TypeError(f"__init__() takes {len(names) + 1} positional arguments but {len(args) + 1} were given")
        values = dict(zip(names, args))
        for key in kwargs:
            if key in values:
                raise TypeError(f"__init__() got multiple values for argument {key!r}")
            if key not in known:
                raise TypeError(f"__init__() got an unexpected keyword argument {key!r}")
        values.update(kwargs)
        for name, taken, default, factory in rest:
            if taken and name in values:
                continue
            if default is not MISSING:
                values[name] = default
            elif factory is not MISSING:
                values[name] = factory()
            else:
                raise TypeError(f"__init__() missing 1 required positional argument: {name!r}")
        if frozen:
            self.__dict__.update(values)
        else:
            for name, value in values.items():
                setattr(self, name, value)
        if post_init:
            self.__post_init__()

    __init__.__qualname__ = f"{cls.__qualname__}.__init__"
    return __init__


def _compared(names: Tuple[str, ...]) -> Callable[[Any], Any]:
    if not names:
        return lambda item: ()
    return operator.attrgetter(*names)


def _frozen_setattr(self: Any, name: str, value: Any) -> None:
    raise _frozen_error(name)


def _frozen_delattr(self: Any, name: str) -> None:
    raise _frozen_error(name)


def _frozen_error(name: str) -> Exception:
    import dataclasses  # only on this error path: the exception users catch is the standard one

    return dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")


class _LazyFields:
    """``__dataclass_fields__`` (or ``__dataclass_params__``), built by ``dataclasses`` on first use."""

    def __init__(self, attribute: str) -> None:
        self.attribute = attribute

    def __get__(self, instance: Any, owner: type) -> Any:
        import dataclasses

        specs: List[Field] = owner.__dict__["__value_fields__"]
        options: Dict[str, bool] = owner.__dict__["__value_options__"]
        shadow = dataclasses.make_dataclass(
            owner.__name__,
            [
                (
                    spec.name,
                    spec.type,
                    dataclasses.field(
                        default=dataclasses.MISSING if spec.default is MISSING else spec.default,
                        default_factory=(
                            dataclasses.MISSING if spec.default_factory is MISSING else spec.default_factory
                        ),
                        init=spec.init,
                        repr=spec.repr,
                        compare=spec.compare,
                    ),
                )
                for spec in specs
            ],
            frozen=options["frozen"],
            eq=options["eq"],
            repr=options["repr"],
        )
        for attribute in ("__dataclass_fields__", "__dataclass_params__"):
            setattr(owner, attribute, getattr(shadow, attribute))  # the descriptors are replaced: built once
        return getattr(owner, self.attribute)


def dataclass(cls: Any = None, *, frozen: bool = False, eq: bool = True, repr: bool = True) -> Any:
    """``dataclasses.dataclass`` for value classes, without importing ``dataclasses``.

    Example:
        >>> @dataclass(frozen=True)
        ... class Point:
        ...     x: int
        ...     y: int = 0
        >>> Point(1), Point(1) == Point(1, 0), hash(Point(1)) == hash(Point(1, 0)), replace(Point(1), y=2)
        (Point(x=1, y=0), True, True, Point(x=1, y=2))
        >>> import dataclasses
        >>> dataclasses.replace(Point(1), x=3), [f.name for f in dataclasses.fields(Point)]
        (Point(x=3, y=0), ['x', 'y'])
        >>> Point(1).x = 5
        Traceback (most recent call last):
        ...
        dataclasses.FrozenInstanceError: cannot assign to field 'x'
    """

    def wrap(klass: Any) -> Any:
        specs = _fields_of(klass)
        _init_source(klass, specs, frozen)  # refuses a bad field order now, as dataclasses does
        compared = _compared(tuple(spec.name for spec in specs if spec.compare))
        shown = tuple(spec.name for spec in specs if spec.repr)

        def __eq__(self: Any, other: Any) -> Any:
            if other.__class__ is self.__class__:
                return compared(self) == compared(other)
            return NotImplemented

        def __hash__(self: Any) -> int:
            return hash(compared(self))

        def __repr__(self: Any) -> str:
            fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in shown)
            return f"{self.__class__.__qualname__}({fields})"

        made: Dict[str, Callable[..., Any]] = {"__init__": _first_init(klass, specs, frozen)}
        if eq:
            made["__eq__"] = __eq__
        if repr:
            made["__repr__"] = __repr__
        own = klass.__dict__
        # As dataclasses: a method the class defines itself is kept; __hash__ follows its table.
        explicit_hash = "__hash__" in own and not (own["__hash__"] is None and "__eq__" in own)
        for name, method in made.items():
            if name not in own:
                method.__qualname__ = f"{klass.__qualname__}.{name}"
                setattr(klass, name, method)
        if eq and not explicit_hash:
            klass.__hash__ = __hash__ if frozen else None
        if frozen:
            klass.__setattr__ = _frozen_setattr
            klass.__delattr__ = _frozen_delattr
        setattr(klass, "__match_args__", tuple(spec.name for spec in specs if spec.init))
        klass.__value_fields__ = specs
        klass.__value_options__ = {"frozen": frozen, "eq": eq, "repr": repr}
        klass.__dataclass_fields__ = _LazyFields("__dataclass_fields__")
        klass.__dataclass_params__ = _LazyFields("__dataclass_params__")
        return klass

    return wrap if cls is None else wrap(cls)


def replace(obj: _C, **changes: Any) -> _C:
    """A copy of ``obj`` (a :func:`dataclass` instance) with ``changes``: ``dataclasses.replace``.

    Raises:
        ValueError: a change names a field that ``__init__`` does not take.
        TypeError: a change names no field.

    Example:
        >>> @dataclass(frozen=True)
        ... class Pair:
        ...     a: int
        ...     b: int
        >>> replace(Pair(1, 2), b=5)
        Pair(a=1, b=5)
    """
    specs: List[Field] = type(obj).__dict__["__value_fields__"]
    for spec in specs:
        if not spec.init:
            if spec.name in changes:
                raise ValueError(f"field {spec.name} is declared with init=False, it cannot be specified with replace()")
        elif spec.name not in changes:
            changes[spec.name] = getattr(obj, spec.name)
    made: _C = type(obj)(**changes)
    return made


# --- Shared ------------------------------------------------------------------------------------


class Shared:
    """One object for each distinct immutable value seen: a fleet's thousands of recorded hosts
    repeat their texts, capability rows and CPUID entries, and each need be held once.

    The table is bounded: past ``limit`` values, new ones are returned as they are (input, even
    hostile, cannot grow it), and what is in it stays for the process's life.

    Example:
        >>> share = Shared(2)
        >>> a = share(("kvm", 1)); b = share(tuple(["kvm", 1])); a is b
        True
    """

    __slots__ = ("limit", "table")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.table: Dict[Any, Any] = {}

    def __call__(self, item: _C) -> _C:
        found: _C = self.table.get(item, item)
        if found is item and len(self.table) < self.limit:
            self.table[item] = item
        return found


# --- NamedTuple -------------------------------------------------------------------------------

_PROHIBITED = frozenset(
    {"__new__", "__init__", "__slots__", "__getnewargs__", "_fields", "_field_defaults", "_make", "_replace",
     "_asdict", "_source"}  # fmt: skip
)
_SPECIAL = frozenset({"__module__", "__name__", "__annotations__"})


class _NamedTupleMeta(type):
    """What ``typing.NamedTupleMeta`` does for a class statement: a ``collections.namedtuple``
    with the annotated fields (those with a value are the defaults) and the class's methods."""

    def __new__(mcs, typename: str, bases: Tuple[type, ...], namespace: Dict[str, Any]) -> Any:
        if bases != (_NamedTupleBase,):
            raise TypeError("can only inherit from NamedTuple")
        annotations = namespace.get("__annotations__", {})
        defaults = []
        for name in annotations:
            if name in namespace:
                defaults.append(namespace[name])
            elif defaults:
                raise TypeError(f"non-default namedtuple field {name} cannot follow default field")
        made = _namedtuple(typename, list(annotations), defaults=defaults, module=namespace["__module__"])
        made.__annotations__ = made.__new__.__annotations__ = dict(annotations)
        for key, item in namespace.items():
            if key in _PROHIBITED:
                raise AttributeError("Cannot overwrite NamedTuple attribute " + key)
            if key not in _SPECIAL and key not in made._fields:
                setattr(made, key, item)
        return made


# The factory, called with names known only at run time (mypy checks literal calls only).
_namedtuple: Any = collections.namedtuple
_NamedTupleBase = type.__new__(_NamedTupleMeta, "NamedTuple", (), {})


def _named_tuple_entries(bases: Tuple[Any, ...]) -> Tuple[type, ...]:
    return (_NamedTupleBase,)


def NamedTuple(typename: str, fields: Any = None) -> Any:  # noqa: N802 - typing's name
    """``typing.NamedTuple`` for the class statement (and its functional form).

    Example:
        >>> class Pair(NamedTuple):
        ...     a: int
        ...     b: int = 2
        ...     def total(self) -> int:
        ...         return self.a + self.b
        >>> Pair(1), Pair(1).total(), Pair(1)._replace(b=5), Pair._fields
        (Pair(a=1, b=2), 3, Pair(a=1, b=5), ('a', 'b'))
    """
    names = [name for name, _ in (fields or ())]
    return _namedtuple(typename, names)


NamedTuple.__mro_entries__ = _named_tuple_entries  # type: ignore[attr-defined]
