"""teaching while talking: messages.author_name (who said what, for the model's history),
an index on corrections.message_id (each reply's history reads them), and fact_embeddings
(taught questions' sentence embeddings, computed once)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 19:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('author_name', sa.String(length=64), nullable=True))
    with op.batch_alter_table('corrections', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_corrections_message_id'), ['message_id'], unique=False)
    op.create_table('fact_embeddings',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('guild_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('text_sha256', sa.String(length=64), nullable=False),
    sa.Column('model', sa.String(length=64), nullable=False),
    sa.Column('vector', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['guild_id'], ['guilds.id'], name=op.f('fk_fact_embeddings_guild_id_guilds'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fact_embeddings')),
    sa.UniqueConstraint('guild_id', 'text_sha256', 'model', name=op.f('uq_fact_embeddings_guild_id'))
    )


def downgrade() -> None:
    op.drop_table('fact_embeddings')
    with op.batch_alter_table('corrections', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_corrections_message_id'))
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_column('author_name')
