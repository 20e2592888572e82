"""steps as 64-bit integers: metrics.step, run_summaries.step, metric_blocks.block and .last_step

A step is any signed 64-bit integer (dlx.tracking.logged_values.checked_step), but these columns were
INTEGER, which PostgreSQL keeps in 32 bits: a step above 2**31 - 1 was refused there. SQLite's
INTEGER already holds 64 bits, so only PostgreSQL's columns change.

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

COLUMNS = (('metrics', 'step'), ('run_summaries', 'step'), ('metric_blocks', 'block'),
           ('metric_blocks', 'last_step'))


def upgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    for table, column in COLUMNS:
        op.alter_column(table, column, type_=sa.BigInteger(), existing_type=sa.Integer(), existing_nullable=False)


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    for table, column in COLUMNS:
        op.alter_column(table, column, type_=sa.Integer(), existing_type=sa.BigInteger(), existing_nullable=False)
