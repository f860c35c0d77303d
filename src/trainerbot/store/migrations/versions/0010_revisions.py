"""revisions: every change to a taught answer is a row of `revisions`; dataset_items gets
question_key (its question, keyed as corrections are), replaced_at (a later answer to the
same question was taught) and an index covering chat's check of the taught answers

The rows stored before are keyed here, corrections included (0006 left theirs to the core).
Where a server already had several current answers to one question, the one chat answered
with (the latest correction, else the latest example) stays current and the others are
marked replaced; each gets a revision, in that order, so `revisions` shows them all.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 04:30:00
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

from trainerbot.store.keys import question_key

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    with op.batch_alter_table('dataset_items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('question_key', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('replaced_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_dataset_items_question', ['guild_id', 'question_key'], unique=False)
        batch_op.create_index('ix_dataset_items_taught', ['guild_id', 'replaced_at', 'archived_in', 'label', 'source'],
                              unique=False)
    op.create_table('revisions',
    sa.Column('id', ID, nullable=False),
    sa.Column('guild_id', ID, nullable=False),
    sa.Column('question_key', sa.String(length=32), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('prompt', sa.Text(), nullable=True),
    sa.Column('answer', sa.Text(), nullable=True),
    sa.Column('rejected', sa.Text(), nullable=True),
    sa.Column('item_id', ID, nullable=True),
    sa.Column('dataset_id', ID, nullable=True),
    sa.Column('source', sa.String(length=300), nullable=False),
    sa.Column('actor_id', sa.String(length=64), nullable=False),
    sa.Column('author_id', sa.String(length=64), nullable=True),
    sa.Column('why', sa.String(length=300), nullable=True),
    sa.Column('forgotten', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['dataset_id'], ['datasets.id'], name=op.f('fk_revisions_dataset_id_datasets'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['guild_id'], ['guilds.id'], name=op.f('fk_revisions_guild_id_guilds'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['item_id'], ['dataset_items.id'], name=op.f('fk_revisions_item_id_dataset_items'),
                            ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_revisions')),
    sa.UniqueConstraint('guild_id', 'question_key', 'number', name=op.f('uq_revisions_guild_id'))
    )
    _key_existing_rows()


def _key_existing_rows() -> None:
    bind = op.get_bind()
    corrections = sa.table('corrections', sa.column('id'), sa.column('prompt'), sa.column('question_key'))
    unkeyed = bind.execute(sa.select(corrections.c.id, corrections.c.prompt).where(corrections.c.question_key.is_(None))).all()
    if unkeyed:
        bind.execute(corrections.update().where(corrections.c.id == sa.bindparam('row_id'))
                     .values(question_key=sa.bindparam('key')),
                     [{'row_id': cid, 'key': question_key(prompt)} for cid, prompt in unkeyed])
    items = sa.table('dataset_items', *(sa.column(c) for c in (
        'id', 'guild_id', 'dataset_id', 'prompt', 'response', 'rejected', 'label', 'source', 'source_ref', 'author_id',
        'correction_id', 'archived_in', 'created_at', 'question_key', 'replaced_at')))
    rows = bind.execute(sa.select(items)).all()
    if rows:
        bind.execute(items.update().where(items.c.id == sa.bindparam('row_id')).values(question_key=sa.bindparam('key')),
                     [{'row_id': row.id, 'key': question_key(row.prompt)} for row in rows])
    # Baseline revisions for the answers taught now (positive examples that are not 👍 votes).
    chains: dict[tuple[int, str], list[sa.Row[Any]]] = {}
    for row in rows:
        if row.archived_in is None and row.label == 'positive' and row.source != 'reaction':
            chains.setdefault((row.guild_id, question_key(row.prompt)), []).append(row)
    revisions = sa.table('revisions', *(sa.column(c) for c in (
        'guild_id', 'question_key', 'number', 'action', 'prompt', 'answer', 'rejected', 'item_id', 'dataset_id',
        'source', 'actor_id', 'author_id', 'created_at')))
    now = datetime.now(UTC)
    baseline: list[dict[str, Any]] = []
    replaced: list[dict[str, Any]] = []
    for (guild_id, key), chain in chains.items():
        chain.sort(key=lambda r: (r.source == 'correction', r.id))  # the order chat let them win in
        baseline.extend({
            'guild_id': guild_id, 'question_key': key, 'number': number,
            'action': 'correction' if row.source == 'correction' else 'import',
            'prompt': row.prompt, 'answer': row.response, 'rejected': row.rejected, 'item_id': row.id,
            'dataset_id': row.dataset_id,
            'source': (f'correction #{row.correction_id}' if row.correction_id else
                       (row.source_ref or '').removeprefix('file:') or row.source)[:300],
            'actor_id': row.author_id, 'author_id': row.author_id, 'created_at': row.created_at or now}
            for number, row in enumerate(chain, 1))
        replaced.extend({'row_id': row.id} for row in chain[:-1])
    if baseline:
        bind.execute(revisions.insert(), baseline)
    if replaced:
        bind.execute(items.update().where(items.c.id == sa.bindparam('row_id')).values(replaced_at=now), replaced)


def downgrade() -> None:
    op.drop_table('revisions')
    with op.batch_alter_table('dataset_items', schema=None) as batch_op:
        batch_op.drop_index('ix_dataset_items_taught')
        batch_op.drop_index('ix_dataset_items_question')
        batch_op.drop_column('replaced_at')
        batch_op.drop_column('question_key')
