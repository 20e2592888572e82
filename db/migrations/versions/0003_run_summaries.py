"""run summaries, metric blocks and numeric parameters: what filters, sorts and charts over many runs read

A run's final metrics (value at the last step, min, max) get a table kept up to date by the
tracking flush, and parameters a numeric column, both indexed by key, so listing, filtering and
sorting 100,000 runs is one SQL query that never reads metric histories. Metric blocks (last
point, min, max per 50 steps) let a chart of a long history read 50x fewer rows. Existing runs
are backfilled.

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

from db.models import param_number

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('run_summaries',
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=250), nullable=False),
    sa.Column('step', sa.Integer(), nullable=False),
    sa.Column('last', sa.Float(), nullable=True),
    sa.Column('min', sa.Float(), nullable=True),
    sa.Column('max', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id', 'key')
    )
    op.create_index('ix_run_summaries_key_last', 'run_summaries', ['key', 'last'])
    # The last value is the one at the largest step (the latest written where a step repeats).
    op.execute("""
        INSERT INTO run_summaries (run_id, key, step, last, min, max)
        SELECT g.run_id, g.key, g.step,
               (SELECT m.value FROM metrics m WHERE m.run_id = g.run_id AND m.key = g.key
                AND m.step = g.step ORDER BY m.id DESC LIMIT 1),
               g.low, g.high
        FROM (SELECT run_id, key, MAX(step) AS step, MIN(value) AS low, MAX(value) AS high
              FROM metrics GROUP BY run_id, key) g
    """)
    op.create_table('metric_blocks',
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=250), nullable=False),
    sa.Column('block', sa.Integer(), nullable=False),
    sa.Column('last_step', sa.Integer(), nullable=False),
    sa.Column('last', sa.Float(), nullable=True),
    sa.Column('min', sa.Float(), nullable=True),
    sa.Column('max', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id', 'key', 'block')
    )
    op.execute(BLOCKS_BACKFILL)
    with op.batch_alter_table('params') as batch:
        batch.add_column(sa.Column('number', sa.Float(), nullable=True))
    op.create_index('ix_params_key_number', 'params', ['key', 'number'])
    params = sa.table('params', sa.column('run_id', sa.Integer), sa.column('key', sa.String),
                      sa.column('value', sa.Text), sa.column('number', sa.Float))
    connection = op.get_bind()
    rows = connection.execute(sa.select(params.c.run_id, params.c.key, params.c.value)).all()
    updates = [{"r": run_id, "k": key, "n": param_number(value)} for run_id, key, value in rows]
    updates = [u for u in updates if u["n"] is not None]
    if updates:
        connection.execute(sa.update(params).where(params.c.run_id == sa.bindparam("r"),
                                                   params.c.key == sa.bindparam("k"))
                           .values(number=sa.bindparam("n")), updates)


# Blocks of 50 steps (db.models.BLOCK_STEPS), floored as Python's // floors (negative steps too).
BLOCKS_BACKFILL = """
    INSERT INTO metric_blocks (run_id, key, block, last_step, last, min, max)
    SELECT g.run_id, g.key, g.block, g.step,
           (SELECT m.value FROM metrics m WHERE m.run_id = g.run_id AND m.key = g.key
            AND m.step = g.step ORDER BY m.id DESC LIMIT 1),
           g.low, g.high
    FROM (SELECT run_id, key, CASE WHEN step >= 0 THEN step / 50 ELSE -((49 - step) / 50) END AS block,
                 MAX(step) AS step, MIN(value) AS low, MAX(value) AS high
          FROM metrics GROUP BY run_id, key, CASE WHEN step >= 0 THEN step / 50 ELSE -((49 - step) / 50) END) g
"""


def downgrade() -> None:
    op.drop_index('ix_params_key_number', 'params')
    with op.batch_alter_table('params') as batch:
        batch.drop_column('number')
    op.drop_table('metric_blocks')
    op.drop_index('ix_run_summaries_key_last', 'run_summaries')
    op.drop_table('run_summaries')
