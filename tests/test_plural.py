from trainerbot.plural import count


def test_counts_read_right() -> None:
    assert [count(n, "example") for n in (0, 1, 2)] == ["0 examples", "1 example", "2 examples"]
    assert count(1, "reply", "replies") == "1 reply" and count(3, "reply", "replies") == "3 replies"


async def test_one_example_reads_as_one(core, trainer) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import att

    imported = await core.datasets.import_data(trainer, "tiny", None, att("one.jsonl", '{"prompt": "a", "response": "b"}\n'))
    assert imported.content.startswith("Imported 1 example into `tiny`")
    assert "`tiny` — 1 example (1 👍 / 0 👎)" in (await core.datasets.summary(trainer)).content
    forgot = await core.review.forget(trainer, "me")
    assert "1 example" in forgot.content and "1 examples" not in forgot.content
