"""One module per built-in ``flora`` command (plugins add theirs with ``flora_register_commands``)."""
