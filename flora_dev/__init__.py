"""Tools for trying and testing flora offline: the Discord emulator and ``flora dev``'s console.

* ``flora_dev.emulator``: a local Discord API v10 + gateway for disnake, with a driver for tests;
* ``flora_dev.console``: ``flora dev`` — emulator, runtime, file watcher and a web console.

Nothing in ``flora_core`` imports this package.
"""
