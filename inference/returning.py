"""`UPDATE … RETURNING` for the worker's per-job writes: the conditional update of a job row and
the row it left, with the rows it links to, in one statement and one round trip.

Django 5.2 has no update that returns rows, so each claim and each final write was an update and
then a read of the row (with its model version, visit, study and patient joined): two round trips
and two compiled queries per job, on the path of 64 drafts that start and end together (the claim
and the final write held the interpreter in about half of a GPU worker's py-spy samples; one claim
took 2.0 ms of CPU, now 1.0 ms, 64 claims in a row on a 2-core machine). Django still writes the
UPDATE (its compiler turns the filters and values into SQL, expressions such as F("n") + 1 too);
this module only wraps it and turns the returned columns into model instances through the
fields' own converters, as a queryset would."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any, TypeVar, cast

from django.core.exceptions import EmptyResultSet
from django.db import connections, router
from django.db.models import Field, ForeignKey, Model, QuerySet
from django.db.models.expressions import Col
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
    select_sql, parts, expressions = _select(model, tuple(related) if postgres else ())
    with connection.cursor() as cursor:
        if postgres:
            cursor.execute(f"WITH u AS ({update_sql} RETURNING *) {select_sql}", params)
        else:
            columns = ", ".join(_quote(f.column) for f in parts[0][1])
            cursor.execute(f"{update_sql} RETURNING {columns}", params)
        rows = cursor.fetchall()
    converters = compiler.get_converters(expressions)
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
    if not postgres:
        for name in related:
            _load_related(objects, name, db)
    return objects


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
