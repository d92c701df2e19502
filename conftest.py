"""The peers' session fixtures, registered once for the whole suite (tests/conftest.py has
the rest). Imported into each test module that used them, every module had a fixture of its
own: a peer started once per module (five PrusaLink pairs, five OctoPrint servers in a pass),
each kept running to the session's end. Only a root conftest may name plugins."""

pytest_plugins = [
    "tests.bambu_fixtures",
    "tests.klipper_fixtures",
    "tests.octoprint_fixtures",
    "tests.prusalink_fixtures",
    "tests.spoolman_fixtures",
]
