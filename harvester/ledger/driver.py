"""Prebuilt statements run on the database driver's own connection, for the two writes every build
makes: recording its 2xx (``RECORD_SENT``, ``INSERT_ATTEMPT``; ledger/delivering.py) and, on
SQLite, writing the page it was collected in (ledger/collecting.py).

Why: SQLAlchemy's execution path (connection, transaction and pool objects, events, the result
machinery) costs more CPU than the two statements and the commit themselves: about 100 of the
190 µs of recording a delivery on SQLite, alone; twice that with the delivery threads contending
(bench/RESULTS.md, issue 14). Here SQLAlchemy still compiles each statement, once per dialect, and
still hands out the connection from its pool; its bind processors (the UTC timestamps) still
convert the values. Only the per-call machinery is skipped.

Driver errors are raised as SQLAlchemy's (``DBAPIError.instance``), so the ledger's handling of an
unavailable database is the same on both paths.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import Any

from sqlalchemy import Engine, Insert
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement


class DriverStatement:
    """``statement`` compiled for ``engine``'s dialect. An INSERT is compiled for the columns its
    values name, as SQLAlchemy's own execution compiles it: once per set of names, on first use
    (a race compiles twice, harmlessly)."""

    def __init__(self, statement: ClauseElement, engine: Engine) -> None:
        self._statement = statement
        self._dialect = engine.dialect
        self._insert = isinstance(statement, Insert)
        self._forms: dict[tuple[str, ...], _Compiled] = {}

    def bind(self, values: Mapping[str, Any]) -> tuple[str, Sequence[Any] | Mapping[str, Any]]:
        """The SQL and the driver's parameters (positional or named, as its paramstyle wants)
        for ``values``, the statement's own literal values included, each through its type."""
        columns = tuple(values) if self._insert else ()
        form = self._forms.get(columns)
        if form is None:
            form = self._forms[columns] = _Compiled(self._statement, self._dialect, columns)
        return form.sql, form.parameters(values)


class _Compiled:
    def __init__(self, statement: ClauseElement, dialect: Dialect, columns: Sequence[str]) -> None:
        compiled = statement.compile(dialect=dialect, column_keys=list(columns) or None)
        assert isinstance(compiled, SQLCompiler)
        self._compiled = compiled
        self.sql = compiled.string
        self._positions = list(compiled.positiontup) if compiled.positiontup else None
        self._processors: dict[str, Callable[[Any], Any]] = {}
        for name, bind in compiled.binds.items():
            # The dialect's implementation of the type: the generic DateTime has no processor,
            # SQLite's stores the text SQLAlchemy reads and compares everywhere else.
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                self._processors[name] = processor

    def parameters(self, values: Mapping[str, Any]) -> Sequence[Any] | Mapping[str, Any]:
        bound = self._compiled.construct_params(dict(values))
        for name, processor in self._processors.items():
            if name in bound:
                bound[name] = processor(bound[name])
        if self._positions is not None:
            return [bound[name] for name in self._positions]
        return bound


@contextmanager
def driver_transaction(engine: Engine, begin: str | None) -> Iterator[Any]:
    """A cursor in one write transaction on a pooled driver connection, committed at the end
    (rolled back on error). ``begin``: the statement that opens it (SQLite's ``BEGIN
    IMMEDIATE``; None where the driver opens transactions itself)."""
    dbapi_error: type[Exception] = engine.dialect.loaded_dbapi.Error
    try:
        connection = engine.raw_connection()  # connecting can fail too: the database went away
    except dbapi_error as exc:
        raise DBAPIError.instance(None, None, exc, dbapi_error) from exc
    try:
        cursor = connection.cursor()
        try:
            if begin is not None:
                cursor.execute(begin)
            yield cursor
            connection.commit()
        except BaseException as exc:
            with suppress(dbapi_error):  # the connection is gone: so is its transaction
                connection.rollback()
            if isinstance(exc, dbapi_error):
                raise DBAPIError.instance(None, None, exc, dbapi_error) from exc
            raise
        finally:
            cursor.close()
    finally:
        connection.close()  # back to the pool
