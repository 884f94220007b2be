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

from django.db import connections
from django.db.models import Field, ForeignKey, Model, QuerySet
from django.db.models.expressions import Col
from django.db.models.sql.subqueries import UpdateQuery

M = TypeVar("M", bound=Model)


def update_returning(qs: QuerySet[M], values: dict[str, Any], *, related: Sequence[str] = ()) -> list[M]:
    """Update the rows of `qs` with `values` (as `qs.update(**values)` would) and return them as
    they are now, each with the foreign keys named in `related` loaded (None where the link is
    empty). Only filters on the model's own columns: a filter across a relation would need the
    update compiler's rewrite into a subquery, which this does not do."""
    model = qs.model
    db = qs.db
    connection = connections[db]
    query = cast(UpdateQuery, qs.query.chain(UpdateQuery))
    query.add_update_values(values)
    compiler = query.get_compiler(db)
    if any(alias != model._meta.db_table for alias in query.alias_map):
        raise ValueError("update_returning filters on the model's own columns only")
    update_sql, params = compiler.as_sql()
    select_sql, parts, expressions = _select(model, tuple(related))
    with connection.cursor() as cursor:
        cursor.execute(f"WITH u AS ({update_sql} RETURNING *) {select_sql}", params)
        rows = cursor.fetchall()
    converters = compiler.get_converters(expressions)
    objects: list[M] = []
    for row in compiler.apply_converters(rows, converters) if converters else map(list, rows):
        start = len(parts[0][1])
        obj = model.from_db(db, [f.attname for f in parts[0][1]], row[:start])
        for name, (_, fields) in zip(related, parts[1:], strict=True):
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


@cache
def _select(model: type[Model], related: tuple[str, ...]) -> tuple[
        str, list[tuple[str, list[Field[Any, Any]]]], list[Col]]:
    """The SELECT over the updated rows `u`, each related table left-joined under its own alias;
    the fields of each part in the order of its columns; a column expression per selected column
    (for the fields' converters: built once, a claim selects about a hundred)."""
    def quote(name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    def fields_of(m: type[Model]) -> list[Field[Any, Any]]:
        # In the model's own order: `Model.from_db` passes a full row to the constructor by position.
        return list(m._meta.concrete_fields)

    parts: list[tuple[str, list[Field[Any, Any]]]] = [("u", fields_of(model))]
    joins = []
    for i, name in enumerate(related):
        link = _foreign_key(model, name)
        target = cast("type[Model]", link.related_model)
        alias = f"r{i}"
        joins.append(f"LEFT JOIN {quote(target._meta.db_table)} {alias} "
                     f"ON {alias}.{quote(link.target_field.column)} = u.{quote(link.column)}")
        parts.append((alias, fields_of(target)))
    columns = ", ".join(f"{alias}.{quote(f.column)}" for alias, fields in parts for f in fields)
    expressions = [field.get_col(alias) for alias, fields in parts for field in fields]
    return f"SELECT {columns} FROM u {' '.join(joins)}", parts, expressions  # noqa: S608 (names from the models)


def _foreign_key(model: type[Model], name: str) -> ForeignKey[Any, Any]:
    link = model._meta.get_field(name)
    if not isinstance(link, ForeignKey):
        raise ValueError(f"{name} is not a foreign key of {model.__name__}")
    return link
