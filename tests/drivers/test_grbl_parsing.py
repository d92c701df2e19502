"""The GRBL reply parser and the character-counting verdicts: pure functions, on garbage too.

(hypothesis is not a dependency of the project: the fuzzing is seeded random mutation of
real replies, recorded from GRBL 1.1h.)"""

from __future__ import annotations

import random

import pytest

from fabqueue.drivers.grbl import parsing as p
from fabqueue.drivers.grbl.streaming import Line, Sent, Sync, Window, judge

REAL = [
    "ok", "error:20", "ALARM:3", "Grbl 1.1h ['$' for help]", "[MSG:'$H'|'$X' to unlock]",
    "[GC:G0 G54 G17 G21 G90 G94 M5 M9 T0 F0 S0]", "[VER:1.1h.20190830:]", "[OPT:V,15,128]",
    "$110=6000.000", "$32=1",
    "<Idle|MPos:0.000,0.000,0.000|Bf:15,128|FS:0,0|Pn:PXYZRHS|WCO:0.000,0.000,0.000>",
    "<Run|MPos:12.345,-3.210,0.000|Bf:3,97|FS:3000,800|Ov:100,100,100>",
    "<Hold:0|MPos:1.000,2.000,0.000|Bf:15,128|FS:0,0>",
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ok", p.Ok()),
        ("error:20", p.Error(20)),
        ("error:Bad number format", p.Error(None)),
        ("ALARM:2", p.Alarm(2)),
        ("Grbl 1.1h ['$' for help]", p.Banner("1.1h")),
        ("$130=400.000", p.Setting(130, 400.0)),
        ("[MSG:Caution: Unlocked]", p.Message("MSG", "Caution: Unlocked")),
        ("[OPT:V,15,128]", p.Message("OPT", "V,15,128")),
        ("<Run|MPos:1.000,2.500,0.000|Bf:3,97|FS:3000,800>",
         p.Status("Run", (1.0, 2.5, 0.0), (3, 97))),
        ("<Idle|WPos:0.000,0.000,0.000|FS:0,0>", p.Status("Idle", (0.0, 0.0, 0.0), None)),
    ],
)
def test_real_replies_parse(text: str, expected: p.Item) -> None:
    assert p.parse(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "<Idle|MPos:0.00000.000,0.000|FS:0,0>",  # the comma the real firmware dropped
        "<Idle|MPos:0.000,0.000,0.000|Bf:15,128",  # cut off
        "<Idle|Bf:15,128|FS:0,0>",  # no position: a field went missing
        "<Idle|MPos:0.000,0.000,0.000|Bf:15,1x8|FS:0,0>",
        "<Idle|MPos:0.000,0.000,0.000|Bf:15,999|FS:0,0>",
        "<Idlx|MPos:0.000,0.000,0.000|FS:0,0>",
        "<Idle|MPos:0.000,0.000,0.000|MPos:1.000,0.000,0.000>",
        "<Run|MPos:1.000,2.000,0.000|Bf:3,97|FS:3000,800><Idle|",
        "ok ok", "okk", "o", "error:", "ALARM:", "ALARM:x", "Grbl 1.1h ['$' for hel",
        "[MSG:unterminated", "$1x0=3", "\x00\xff", "", "Idle|MPos:0.000,0.000,0.000>",
    ],
)
def test_garbage_is_noise(text: str) -> None:
    assert isinstance(p.parse(text), p.Noise)


@pytest.mark.parametrize("seed", range(5))
def test_mutated_replies_never_raise_and_keep_their_shape(seed: int) -> None:
    rnd = random.Random(seed)
    kinds = {type(p.parse(text)) for text in REAL}
    for _ in range(3000):
        chars = list(rnd.choice(REAL))
        for _ in range(rnd.randint(1, 3)):
            i = rnd.randrange(len(chars))
            action = rnd.randrange(4)
            if action == 0:
                del chars[i]
            elif action == 1:
                chars.insert(i, chars[i])
            elif action == 2:
                chars[i] = chr(ord(chars[i]) ^ (1 << rnd.randrange(8)))
            else:
                chars = chars[: rnd.randrange(len(chars) + 1)]
            if not chars:
                break
        item = p.parse("".join(chars))
        assert type(item) in kinds | {p.Noise, p.Error, p.Alarm}
        if isinstance(item, p.Status) and item.buffer is not None:
            assert 0 <= item.buffer[1] <= 256  # a Bf: value is at least plausible
        if isinstance(item, p.Ok):
            assert "".join(chars).strip() == "ok"


def test_judge_sees_lost_and_extra_replies() -> None:
    assert judge("Idle", (15, 128), 0) is Sync.IN_STEP
    assert judge("Run", (10, 100), 40, 12) is Sync.IN_STEP  # 28 in RX + 12 being run
    assert judge("Idle", (15, 128), 20) is Sync.LOST_REPLY  # all ran, 20 bytes still counted
    assert judge("Run", (15, 128), 20) is Sync.IN_STEP  # lines may still be on their way
    assert judge("Run", (5, 90), 20) is Sync.EXTRA_REPLY  # GRBL holds 38 bytes, we count 20
    # planner full: GRBL works on our oldest line (16 bytes) and holds 112 more in RX
    assert judge("Run", (0, 16), 112, 16) is Sync.EXTRA_REPLY
    assert judge("Run", (0, 32), 112, 16) is Sync.IN_STEP


def test_a_verdict_needs_two_reports_without_a_reply_between() -> None:
    window = Window()
    window.push(Sent(Line(1, "G1 X1"), True))
    assert window.on_status("Idle", (15, 128)) is Sync.IN_STEP  # once: could be a glitch
    assert window.on_status("Idle", (15, 128)) is Sync.LOST_REPLY
    assert [s.line.number for s in window.clear()] == [1]  # the driver counts them as run
    window.push(Sent(Line(2, "G1 X2"), True))
    assert window.on_status("Idle", (15, 128)) is Sync.IN_STEP
    window.answer()  # the reply came after all
    assert window.on_status("Idle", (15, 128)) is Sync.IN_STEP
    assert window.answer() is None  # nothing in flight: an extra reply
