"""Reasons stored as codes and rendered in the reader's language."""

from fabqueue.core.reasons import N_, decode, reason, render


def test_encoded_reason_renders_with_the_readers_translation() -> None:
    stored = reason("grbl_alarm", N_("Alarm {code}: {text}"), code=2, text="soft limit")
    assert stored.startswith("fq:")
    assert decode(stored).code == "grbl_alarm"
    assert render(stored) == "Alarm 2: soft limit"
    lt = {"Alarm {code}: {text}": "Aliarmas {code}: {text}"}
    assert render(stored, lambda s: lt.get(s, s)) == "Aliarmas 2: soft limit"


def test_plain_text_is_shown_as_it_is() -> None:
    assert render("printer said: thermal runaway") == "printer said: thermal runaway"
    assert decode("fq:{broken") is None
    assert render(None) == ""


def test_a_broken_translation_falls_back_to_english() -> None:
    stored = reason("x", N_("{n} lines"), n=3)
    assert render(stored, lambda s: "{m} eilučių") == "3 lines"


def test_nested_reason_parameters_are_rendered_too() -> None:
    inner = reason("lost", N_("link lost"))
    outer = reason("interrupted", N_("Interrupted: {cause}"), cause=inner)
    ru = {"link lost": "связь потеряна", "Interrupted: {cause}": "Прервано: {cause}"}
    assert render(outer, lambda s: ru.get(s, s)) == "Прервано: связь потеряна"
