"""artifacts: one (run, kind, name) each, as a unique index, so that indexing a file is one upsert

Runs that logged the same artifact from two writers at once may hold duplicates: the newest row of
each (run, kind, name) is kept.

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    artifacts = sa.table('artifacts', sa.column('id', sa.Integer), sa.column('run_id', sa.Integer),
                         sa.column('kind', sa.String), sa.column('name', sa.String))
    newer = artifacts.alias('newer')
    op.execute(artifacts.delete().where(sa.exists().where(
        newer.c.run_id == artifacts.c.run_id, newer.c.kind == artifacts.c.kind,
        newer.c.name == artifacts.c.name, newer.c.id > artifacts.c.id)))
    op.create_index('uq_artifacts_run_kind_name', 'artifacts', ['run_id', 'kind', 'name'], unique=True)


def downgrade() -> None:
    op.drop_index('uq_artifacts_run_kind_name', table_name='artifacts')
