"""`UPDATE … RETURNING` for the worker's per-job writes: the conditional update of a job row and
the row it left, with the rows it links to, in one statement and one round trip.

Django 5.2 has no update that returns rows, so each claim and each final write was an update and
then a read of the row (with its model version, visit, study and patient joined): two round trips
and two compiled queries per job, on the path of 64 drafts that start and end together (the claim
and the final write held the interpreter in about half of a GPU worker's py-spy samples; one claim
took 2.0 ms of CPU, now 1.0 ms, 64 claims in a row on a 2-core machine). Django still writes the
UPDATE (its compiler turns the filters and values into SQL, expressions such as F("n") + 1 too);
this module only wraps it and turns the returned columns into model instances through the
fields' own converters, as a queryset would.

`update_rows_returning` is the same for many rows that each get values of their own (the final
writes of a batch of drafts that end together): one `UPDATE … FROM (VALUES …) RETURNING` on
PostgreSQL, where a statement per row cost a round trip and a compiled query per job on the path
from the engine's last token to the client (4–8 ms a job in a busy worker, 64 jobs in a row)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from functools import cache
from typing import Any, TypeVar, cast

from django.core.exceptions import EmptyResultSet
from django.db import connections, router
from django.db.models import CharField, F, Field, ForeignKey, Model, QuerySet, Value
from django.db.models.expressions import Col
from django.db.models.functions import Coalesce
from django.db.models.sql import Query
from django.db.models.sql.compiler import SQLCompiler
from django.db.models.sql.subqueries import UpdateQuery

M = TypeVar("M", bound=Model)


def update_returning(qs: QuerySet[M], values: dict[str, Any], *, related: Sequence[str] = ()) -> list[M]:
    """Update the rows of `qs` with `values` (as `qs.update(**values)` would) and return them as
    they are now, each with the foreign keys named in `related` loaded (None where the link is
    empty). Only filters on the model's own columns (a foreign key's id included): a filter across
    a relation would need the update compiler's rewrite into a subquery, which this does not do.

    PostgreSQL: one statement. Elsewhere (SQLite, the embedded demo, which cannot put an UPDATE in
    a WITH): the UPDATE … RETURNING the row, then each relation read by id."""
    if qs.query.is_sliced:
        raise TypeError("Cannot update a query once a slice has been taken.")
    if not values:
        raise ValueError("update_returning needs values to set")
    model = qs.model
    for name in related:  # a wrong name is refused before anything is written, on every database
        _foreign_key(model, name)
    # The database a write goes to (as QuerySet.update: `qs.db` would name the one reads go to).
    db = qs._db or router.db_for_write(model)  # type: ignore[attr-defined]
    connection = connections[db]
    query = cast(UpdateQuery, qs.query.chain(UpdateQuery))
    query.add_update_values(values)
    # As the update compiler decides whether it must rewrite the filter into a subquery
    # (SQLUpdateCompiler.pre_sql_setup): joins Django trimmed away (a filter on visit=…) do not count.
    query.get_initial_alias()
    if query.count_active_tables() != 1 or query.related_updates:
        raise ValueError("update_returning filters on the model's own columns only")
    compiler = query.get_compiler(db)
    try:
        update_sql, params = compiler.as_sql()
    except EmptyResultSet:  # a filter that matches nothing by construction (pk__in=[])
        return []
    postgres = connection.vendor == "postgresql"
    select_sql, parts, _ = _select(model, tuple(related) if postgres else ())
    with connection.cursor() as cursor:
        if postgres:
            cursor.execute(f"WITH u AS ({update_sql} RETURNING *) {select_sql}", params)
        else:
            columns = ", ".join(_quote(f.column) for f in parts[0][1])
            cursor.execute(f"{update_sql} RETURNING {columns}", params)
        rows = cursor.fetchall()
    objects = _objects(model, db, compiler, rows, parts, tuple(related) if postgres else ())
    if not postgres:
        for name in related:
            _load_related(objects, name, db)
    return objects


def update_rows_returning(model: type[M], rows: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]], *,
                          keep: Collection[str] = (), fill: Collection[str] = ()) -> dict[Any, M]:
    """Update many rows of `model`, each with values of its own, and return the rows it updated as
    they are now, by primary key. `rows`: (match, values) pairs, every match with the same fields and
    every values with the same fields: a row is updated only where each of its match fields equals
    the given value (a job still this worker's), and rows that do not match are left alone and not
    returned. A field in `keep` keeps a value the row already has (a time already written); one in
    `fill` is set unless its new value is None. Plain values only (no expressions). A match that names
    the same row twice is refused: which of the two values would win is up to the database.

    PostgreSQL: one statement. Elsewhere (the embedded demo's SQLite): `update_returning` per row."""
    if not rows:
        return {}
    match_names, value_names = list(rows[0][0]), list(rows[0][1])
    if any(list(m) != match_names or list(v) != value_names for m, v in rows):
        raise ValueError("update_rows_returning: every row must match and set the same fields")
    if not value_names:
        raise ValueError("update_rows_returning needs values to set")
    meta = model._meta
    fields = {name: cast("Field[Any, Any]", meta.get_field(name)) for name in {*match_names, *value_names}}
    if any(not f.concrete or f.many_to_many or f.one_to_many for f in fields.values()):
        raise ValueError("update_rows_returning writes the model's own columns only")
    if any(value is None for match, _ in rows for value in match.values()):
        # PostgreSQL's `=` never matches NULL where SQLite's filter(col=None) matches IS NULL.
        raise ValueError("update_rows_returning: a match on None")
    keys = [tuple(m.values()) for m, _ in rows]
    if len(set(keys)) != len(keys):
        raise ValueError("update_rows_returning: two rows with the same match")
    db = router.db_for_write(model)
    connection = connections[db]
    if connection.vendor != "postgresql":
        out: dict[Any, M] = {}
        for match, values in rows:
            updated = update_returning(model._default_manager.using(db).filter(**match),
                                       merge_values(values, keep=keep, fill=fill, model=model))
            out.update((obj.pk, obj) for obj in updated)
        return out
    names = [*match_names, *value_names]
    columns = [f"m{i}" if i < len(match_names) else f"v{i}" for i in range(len(names))]
    row_sql = "(" + ", ".join(f"%s::{_cast(fields[n], connection)}" for n in names) + ")"
    params = [fields[n].get_db_prep_save(value, connection)
              for match, values in rows for n, value in (*match.items(), *values.items())]

    def assign(name: str, column: str) -> str:
        target = _quote(fields[name].column)
        if name in keep:
            return f"{target} = COALESCE(j.{target}, v.{column})"
        if name in fill:
            return f"{target} = COALESCE(v.{column}, j.{target})"
        return f"{target} = v.{column}"

    sets = ", ".join(assign(n, c) for n, c in zip(names, columns, strict=True) if c.startswith("v"))
    where = " AND ".join(f"j.{_quote(fields[n].column)} = v.{c}" for n, c in zip(names, columns, strict=True)
                         if c.startswith("m"))
    select_sql, parts, _ = _select(model, ())
    sql = (f"WITH v ({', '.join(columns)}) AS (VALUES {', '.join([row_sql] * len(rows))}), "  # noqa: S608
           f"u AS (UPDATE {_quote(meta.db_table)} AS j SET {sets} FROM v WHERE {where} RETURNING j.*) {select_sql}")
    with connection.cursor() as cursor:  # names from the model, values as parameters
        cursor.execute(sql, params)
        returned = cursor.fetchall()
    return {obj.pk: obj for obj in _objects(model, db, Query(model).get_compiler(db), returned, parts, ())}


def _cast(field: Field[Any, Any], connection: Any) -> str:
    """The type a VALUES column of `field` is cast to (VALUES alone would guess text). A CharField's
    without its length: a cast to varchar(n) cuts a longer value silently, where the column itself
    refuses it as an UPDATE of the field would."""
    if isinstance(field, CharField):
        return str(connection.ops.cast_char_field_without_max_length)
    return str(field.cast_db_type(connection))  # type: ignore[attr-defined]


def merge_values(values: Mapping[str, Any], *, keep: Collection[str] = (), fill: Collection[str] = (),
                 model: type[Model] | None = None) -> dict[str, Any]:
    """`values` with `update_rows_returning`'s keep and fill rules, as `QuerySet.update` values."""
    merged: dict[str, Any] = {}
    for name, value in values.items():
        if name in keep:
            if value is not None:  # None: nothing to keep or write
                field = model._meta.get_field(name) if model is not None else None
                merged[name] = Coalesce(F(name), Value(value, output_field=field))  # type: ignore[arg-type]
        elif name in fill:
            if value is not None:
                merged[name] = value
        else:
            merged[name] = value
    return merged


def _objects(model: type[M], db: str, compiler: SQLCompiler, rows: list[Any],
             parts: list[tuple[str, list[Field[Any, Any]]]], related: tuple[str, ...]) -> list[M]:
    """Model instances from rows of `_select(model, related)`, through the fields' converters."""
    _, _, expressions = _select(model, related)
    converters = compiler.get_converters(cast("list[Any]", expressions))
    objects: list[M] = []
    for row in compiler.apply_converters(rows, converters) if converters else map(list, rows):
        start = len(parts[0][1])
        obj = model.from_db(db, [f.attname for f in parts[0][1]], row[:start])
        for name, (_, fields) in zip(related, parts[1:], strict=False):
            values_ = row[start : start + len(fields)]
            start += len(fields)
            link = _foreign_key(model, name)
            target_model = cast("type[Model]", link.related_model)
            target = None
            if values_[fields.index(target_model._meta.pk)] is not None:
                target = target_model.from_db(db, [f.attname for f in fields], values_)
            link.set_cached_value(obj, target)
        objects.append(obj)
    return objects


def load_related(objects: Sequence[Model], name: str) -> None:
    """Read the foreign key `name` of each object (one query for all), as `update_returning`'s
    `related` does on databases that join no relation into an UPDATE."""
    if objects:
        _load_related(objects, name, objects[0]._state.db or router.db_for_read(type(objects[0])))


def _load_related(objects: Sequence[Model], name: str, db: str) -> None:
    link = _foreign_key(type(objects[0]), name) if objects else None
    if link is None:
        return
    target_model = cast("type[Model]", link.related_model)
    ids = {getattr(obj, link.attname) for obj in objects} - {None}
    found = target_model._default_manager.using(db).in_bulk(list(ids)) if ids else {}
    for obj in objects:
        link.set_cached_value(obj, found.get(getattr(obj, link.attname)))


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@cache
def _select(model: type[Model], related: tuple[str, ...]) -> tuple[
        str, list[tuple[str, list[Field[Any, Any]]]], list[Col]]:
    """The SELECT over the updated rows `u`, each related table left-joined under its own alias;
    the fields of each part in the order of its columns; a column expression per selected column
    (for the fields' converters: built once, a claim selects about a hundred)."""
    def fields_of(m: type[Model]) -> list[Field[Any, Any]]:
        # In the model's own order: `Model.from_db` passes a full row to the constructor by position.
        return list(m._meta.concrete_fields)

    parts: list[tuple[str, list[Field[Any, Any]]]] = [("u", fields_of(model))]
    joins = []
    for i, name in enumerate(related):
        link = _foreign_key(model, name)
        target = cast("type[Model]", link.related_model)
        alias = f"r{i}"
        joins.append(f"LEFT JOIN {_quote(target._meta.db_table)} {alias} "
                     f"ON {alias}.{_quote(link.target_field.column)} = u.{_quote(link.column)}")
        parts.append((alias, fields_of(target)))
    columns = ", ".join(f"{alias}.{_quote(f.column)}" for alias, fields in parts for f in fields)
    expressions = [field.get_col(alias) for alias, fields in parts for field in fields]
    return f"SELECT {columns} FROM u {' '.join(joins)}", parts, expressions  # noqa: S608 (names from the models)


def _foreign_key(model: type[Model], name: str) -> ForeignKey[Any, Any]:
    link = model._meta.get_field(name)
    if not isinstance(link, ForeignKey):
        raise ValueError(f"{name} is not a foreign key of {model.__name__}")
    return link
