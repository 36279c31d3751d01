"""Prebuilt statements compiled once per dialect and run on the command's own DBAPI cursor.

SQLAlchemy's per-execute path (cache key, compiled-cache lookup, execution context, result object) costs
about 50-70 us a statement: more than SQLite takes to run most of the hot paths' statements. A `Prepared`
statement is a Core construct compiled by SQLAlchemy once per dialect (the same SQL text and the column types'
own bind and result processors, so rows are stored and read exactly as through `Connection.execute`), then
executed straight on the cursor of the connection the command holds, inside its transaction.

What stays as through SQLAlchemy: engine `before_cursor_execute` listeners see every statement, and a driver
error goes through the connection's error handling (the engine's `handle_error` hook, `DBAPIError` classes).
Left out: statement echo logging, expanding IN parameters and escaped bind names (refused when built).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import Any

from sqlalchemy import JSON, Table, bindparam, insert
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.sql import ClauseElement

from crisis.store.types import json_bind

Params = Mapping[str, Any]
_NO_VALUE = object()


def _binder(binds: list[tuple[str, str, Any, Callable[[Any], Any] | None]], positional: bool,
            source: Callable[[str], str] | None = None) -> Callable[[Any], list[Any] | dict[str, Any]]:
    """The function making the driver's parameters from one set of named values (in order, or by name), written
    out for this statement: `lambda p: [p["b_id"], f1(p["b_at"]), c2]`. Every hot-path row goes through it (~20
    rows a transition), and a generic loop over the binds cost ~5 us a row, more than SQLite takes to store it.
    A constant's processed value is computed once here (processors are pure). `source`: the expression reading a
    bind's value from `p` (default `p[key]`)."""
    env: dict[str, Any] = {}
    parts = []
    for i, (name, key, const, proc) in enumerate(binds):
        if const is _NO_VALUE:
            expr = source(key) if source is not None else f"p[{key!r}]"
            if proc is not None:
                env[f"f{i}"] = proc
                expr = f"f{i}({expr})"
        else:
            env[f"c{i}"] = const if proc is None else proc(const)
            expr = f"c{i}"
        parts.append(expr if positional else f"{name!r}: {expr}")
    body = f"[{', '.join(parts)}]" if positional else f"{{{', '.join(parts)}}}"
    exec(f"def bind(p):\n    return {body}\n", env)  # noqa: S102  (source built above from bind names only)
    return env["bind"]  # type: ignore[no-any-return]


class _Plan:
    """A statement compiled for one dialect: its SQL, how named values become the driver's parameters (in
    order for a positional driver such as sqlite3, by name for psycopg), and the result columns' converters."""

    __slots__ = ("sql", "positional", "args", "names", "convert", "_columns", "_dialect")

    def __init__(self, stmt: ClauseElement, dialect: Dialect, source: Callable[[str], str] | None = None) -> None:
        compiled = stmt.compile(dialect=dialect)
        if compiled.literal_execute_params or compiled.post_compile_params or compiled.escaped_bind_names:
            raise ValueError(f"not a plain prebuilt statement: {compiled.string}")
        self.sql = compiled.string
        self.positional = bool(dialect.positional)
        by_name = {name: bp for bp, name in compiled.bind_names.items()}
        order = compiled.positiontup if self.positional else list(by_name)
        assert order is not None
        binds = []
        for name in order:
            bp = by_name[name]
            value = _NO_VALUE if bp.required else bp.effective_value
            proc = bp.type.dialect_impl(dialect).bind_processor(dialect)
            if proc is not None and isinstance(bp.type, JSON):
                proc = json_bind(dialect, proc)
            binds.append((name, bp.key, value, proc))
        self.args: Callable[[Params], list[Any] | dict[str, Any]] = _binder(binds, self.positional, source)
        self._columns = list(getattr(stmt, "exported_columns", ()) or ())
        self._dialect = dialect
        self.names = tuple(c.key for c in self._columns)
        self.convert: tuple[tuple[int, Callable[[Any], Any]], ...] | None = None  # known once a cursor describes it

    def converters(self, description: Sequence[Sequence[Any]] | None) -> tuple[tuple[int, Callable[[Any], Any]], ...]:
        """The result columns' processors, given the driver's column types (psycopg's numeric ones need them)."""
        if self.convert is None:
            dialect = self._dialect
            types = [d[1] for d in description or ()] or [None] * len(self._columns)
            self.convert = tuple((i, p) for i, (c, code) in enumerate(zip(self._columns, types, strict=True))
                                 if (p := c.type.dialect_impl(dialect).result_processor(dialect, code)) is not None)
        return self.convert

    def rows(self, raw: Iterable[Sequence[Any]], description: Sequence[Sequence[Any]] | None,
             same: int = 0) -> list[tuple[Any, ...]]:
        """`raw` rows converted; the first `same` columns are converted on the first row only and shared by the
        others (a joined parent's columns, repeated on each child's row)."""
        convert = self.converters(description)
        if not convert:
            return [tuple(r) for r in raw]
        out = []
        for r in raw:
            row = list(r)
            if out and same:
                row[:same] = out[0][:same]
                for i, proc in convert:
                    if i >= same:
                        row[i] = proc(row[i])
            else:
                for i, proc in convert:
                    row[i] = proc(row[i])
            out.append(tuple(row))
        return out


class Prepared:
    """A Core statement with bound parameters, compiled once per dialect (see the module docstring)."""

    __slots__ = ("stmt", "_plans", "_source")

    def __init__(self, stmt: ClauseElement, source: Callable[[str], str] | None = None) -> None:
        self.stmt, self._source = stmt, source  # (source: see _binder)
        self._plans: dict[str, _Plan] = {}

    def plan(self, conn: Connection | Engine) -> _Plan:
        dialect = conn.dialect
        plan = self._plans.get(dialect.name)
        if plan is None:
            plan = self._plans[dialect.name] = _Plan(self.stmt, dialect, self._source)
        return plan

    def names(self, conn: Connection) -> tuple[str, ...]:
        """The result columns' keys."""
        return self.plan(conn).names

    def rows(self, conn: Connection, params: Params | None = None, same: int = 0) -> list[tuple[Any, ...]]:
        """Run it; its result rows, converted as SQLAlchemy would (aware datetimes, JSON values, booleans). `same`:
        how many leading columns hold the same values on every row (converted once: see `_Plan.rows`)."""
        plan = self.plan(conn)
        cursor = _execute(conn, plan.sql, plan.args(params or {}), many=False)
        try:
            return plan.rows(cursor.fetchall(), cursor.description, same)
        finally:
            cursor.close()

    def read(self, engine: Engine, params: Params | None = None) -> list[tuple[Any, ...]]:
        """A read on its own, outside any command: on SQLite one statement straight on a pooled DBAPI connection
        in autocommit (a single statement reads one consistent snapshot; a SQLAlchemy read transaction around it,
        checkout + BEGIN + rollback, costs ~150 us against the read's ~20), elsewhere in a read transaction. The
        pool hands the connection out whole, as to a command (an in-memory drill's single connection is used by
        its one thread, never while a command holds it)."""
        if engine.dialect.name != "sqlite":
            from crisis.store.db import read_connection

            with read_connection(engine) as conn:
                return self.rows(conn, params)
        plan = self.plan(engine)
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            try:
                return plan.rows(cursor.execute(plan.sql, plan.args(params or {})).fetchall(), cursor.description)
            finally:
                cursor.close()
        finally:
            raw.close()

    def first(self, conn: Connection, params: Params | None = None) -> tuple[Any, ...] | None:
        found = self.rows(conn, params)
        return found[0] if found else None

    def run(self, conn: Connection, params: Params | None = None) -> int:
        """Run it for its effect; the rows it changed."""
        plan = self.plan(conn)
        cursor = _execute(conn, plan.sql, plan.args(params or {}), many=False)
        count = cursor.rowcount
        cursor.close()
        return count

    def many(self, conn: Connection, params: Sequence[Params]) -> int:
        """Run it once per set of values in one driver call (executemany); the rows changed in all."""
        if not params:
            return 0
        plan = self.plan(conn)
        cursor = _execute(conn, plan.sql, [plan.args(p) for p in params], many=True)
        count = cursor.rowcount
        cursor.close()
        return count


class InsertMany:
    """Rows inserted with one multi-row `INSERT … VALUES (…), (…) RETURNING …` (one prebuilt statement per row
    count): what executemany cannot do on SQLite, where it returns no rows."""

    __slots__ = ("table", "columns", "returning", "_by_count")
    CHUNK = 100  # rows per statement at most: a long catch-up's batch takes a few statements, not 500 shapes

    def __init__(self, table: Table, columns: Sequence[str], returning: Sequence[str]) -> None:
        self.table, self.columns, self.returning = table, tuple(columns), tuple(returning)
        self._by_count: dict[int, Prepared] = {}  # row count -> statement

    def rows(self, conn: Connection, rows: Sequence[Params]) -> list[tuple[Any, ...]]:
        """Insert `rows` (each with every column of `columns`); the returned columns of each. Their order is not
        promised (SQLite's RETURNING): match them by a returned key."""
        out: list[tuple[Any, ...]] = []
        for start in range(0, len(rows), self.CHUNK):
            out += self._chunk(conn, rows[start:start + self.CHUNK])
        return out

    def _chunk(self, conn: Connection, rows: Sequence[Params]) -> list[tuple[Any, ...]]:
        stmt = self._by_count.get(len(rows))
        if stmt is None:
            c = self.table.c
            values = [{k: bindparam(f"r{i}_{k}", type_=c[k].type) for k in self.columns} for i in range(len(rows))]
            stmt = self._by_count[len(rows)] = Prepared(  # bind r{i}_{column} is read as rows[i][column]
                insert(self.table).values(values).returning(*(c[k] for k in self.returning)), _row_column)
        return stmt.rows(conn, rows)  # type: ignore[arg-type]


def _row_column(key: str) -> str:
    """InsertMany's bind `r{i}_{column}` read from its rows: `p[i]["column"]`."""
    i, column = key[1:].split("_", 1)
    return f"p[{int(i)}][{column!r}]"


class _SQLiteWrite:
    """A command's write transaction on SQLite, held straight on a pooled DBAPI connection (see `write`). It has
    what the prepared statements and the engine's listeners use of a Connection: the dialect, the engine and its
    event dispatch, the pooled connection, the execution options; a driver error goes through a Connection made
    on this DBAPI connection only then, so it is handled as on any Connection."""

    __slots__ = ("engine", "dialect", "dispatch", "connection")
    _has_events = False  # no listeners of its own: the engine's run, as SQLAlchemy runs them

    def __init__(self, engine: Engine) -> None:
        self.engine, self.dialect, self.dispatch = engine, engine.dialect, engine.dispatch
        try:
            self.connection = engine.raw_connection()  # the pool's checkout, with its events (pragmas on connect)
        except engine.dialect.loaded_dbapi.Error as err:
            Connection._handle_dbapi_exception_noconnection(err, engine.dialect, engine)  # noqa: SLF001
            raise

    def get_execution_options(self) -> Any:
        return self.engine.get_execution_options()

    def _handle_dbapi_exception(self, e: BaseException, statement: str | None, parameters: Any, cursor: Any,
                                context: Any) -> None:
        """Raise the driver error `e` as a Connection raises it: DBAPIError classes, the engine's handle_error hook
        (typed errors), invalidation on a disconnect. (Outside a transaction of its own, that Connection also
        rolls the DBAPI connection back: `write` is then rolling back anyway.)"""
        Connection(self.engine, connection=self.connection)._handle_dbapi_exception(  # noqa: SLF001
            e, statement, parameters, cursor, context)


@contextmanager
def write(engine: Engine) -> Iterator[Connection]:
    """A command's write transaction for its prepared statements: commit at the end of the block, roll back on any
    error. On SQLite without SQLAlchemy's Connection and Transaction objects: the same pool checkout, engine
    events (begin: BEGIN IMMEDIATE, crisis.store.db; before_cursor_execute; commit; rollback; handle_error) and
    driver calls, for ~20 us a command less (an empty engine.begin() costs ~25 us against the driver's ~5: on
    the smaller commands a fifth of their Python). Elsewhere (PostgreSQL) engine.begin()."""
    if engine.dialect.name != "sqlite":
        with engine.begin() as conn:
            yield conn
        return
    tx = _SQLiteWrite(engine)
    try:
        if engine._has_events:  # noqa: SLF001  (SQLAlchemy's own test, as it makes it)
            engine.dispatch.begin(tx)  # type: ignore[arg-type]
        engine.dialect.do_begin(tx.connection)  # (nothing on SQLite: the begin listener says BEGIN)
        yield tx  # type: ignore[misc]
        if engine._has_events:  # noqa: SLF001
            engine.dispatch.commit(tx)  # type: ignore[arg-type]
        try:
            engine.dialect.do_commit(tx.connection)
        except BaseException as e:
            tx._handle_dbapi_exception(e, None, None, None, None)  # noqa: SLF001
    except BaseException:
        with suppress(Exception):  # the command's own error is the one raised, as SQLAlchemy's rollback does
            if engine._has_events:  # noqa: SLF001
                engine.dispatch.rollback(tx)  # type: ignore[arg-type]
            engine.dialect.do_rollback(tx.connection)
        raise
    finally:
        tx.connection.close()  # back to the pool


def driver_sql(conn: Connection, sql: str) -> None:
    """A statement without parameters or rows (BEGIN), as one driver call."""
    _execute(conn, sql, (), many=False).close()


def _execute(conn: Connection, sql: str, args: Any, *, many: bool) -> Any:
    """One driver call on the connection's DBAPI cursor, as SQLAlchemy's own `_cursor_execute` makes it: engine
    listeners first, driver errors through the connection's handling (typed errors, invalidation)."""
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        if conn._has_events or conn.engine._has_events:  # noqa: SLF001  (SQLAlchemy's own test, as it makes it)
            for fn in conn.dispatch.before_cursor_execute:
                sql, args = fn(conn, cursor, sql, args, None, many)
        if many:
            cursor.executemany(sql, args)
        else:
            cursor.execute(sql, args)
    except BaseException as e:
        conn._handle_dbapi_exception(e, sql, args, cursor, None)  # noqa: SLF001
    return cursor
