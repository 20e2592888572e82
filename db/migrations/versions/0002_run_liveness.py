"""run liveness: heartbeat, owner process and cancel request on runs

Runs tracked from users' own scripts have no job row, so the run itself carries what the
queue keeps for jobs: who writes it (host:pid), when it last said it is alive, and whether
someone asked it to stop.

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('runs') as batch:
        batch.add_column(sa.Column('owner', sa.String(length=200), nullable=True))
        batch.add_column(sa.Column('heartbeat_at', sa.DateTime(), nullable=True))
        batch.add_column(sa.Column('cancel_requested', sa.Boolean(), nullable=False,
                                   server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('runs') as batch:
        batch.drop_column('cancel_requested')
        batch.drop_column('heartbeat_at')
        batch.drop_column('owner')
