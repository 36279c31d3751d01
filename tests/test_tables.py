"""crisis/store/tables.py (generated from the models) is what the generator writes now, and its Core tables
are the models' tables: the same DDL on SQLite and PostgreSQL, the same Python-side defaults."""

from __future__ import annotations

import pytest
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.schema import CreateIndex, CreateTable
from sqlmodel import SQLModel

import crisis.store.models  # noqa: F401  (registers the models' tables)
from crisis.store import gen_tables, tables

CORE = {t.name: t for t in tables.metadata.sorted_tables}


def test_tables_py_is_what_the_generator_writes_from_the_models():
    assert gen_tables.TARGET.read_text(encoding="utf-8") == gen_tables.render(), (
        "crisis/store/tables.py is stale: run `python -m crisis.store.gen_tables`")


def test_every_model_table_is_generated():
    assert set(CORE) == gen_tables._MODEL_TABLES
    assert set(CORE) <= set(SQLModel.metadata.tables)


def ddl(table, dialect) -> list[str]:
    return [str(CreateTable(table).compile(dialect=dialect)).strip(),
            *sorted(str(CreateIndex(ix).compile(dialect=dialect)) for ix in table.indexes)]


@pytest.mark.parametrize("dialect", [sqlite.dialect(), postgresql.dialect()], ids=["sqlite", "postgresql"])
@pytest.mark.parametrize("name", sorted(gen_tables._MODEL_TABLES))
def test_generated_table_compiles_to_the_models_ddl(name, dialect):
    model, core = SQLModel.metadata.tables[name], CORE[name]
    assert ddl(core, dialect) == ddl(model, dialect)
    assert any("CREATE INDEX" in s for t in CORE.values() for s in ddl(t, dialect))


@pytest.mark.parametrize("name", sorted(gen_tables._MODEL_TABLES))
def test_generated_columns_default_and_key_as_the_models(name):
    def facts(table):
        return [(c.name, c.default.arg if c.default is not None else None, c.primary_key, c.autoincrement,
                 c.nullable, sorted(fk.target_fullname for fk in c.foreign_keys)) for c in table.columns]

    assert facts(CORE[name]) == facts(SQLModel.metadata.tables[name])
