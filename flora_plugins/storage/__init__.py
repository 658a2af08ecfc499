"""The built-in relational storage backends, each a plugin of its own (``flora_storage_backend``):
``sqlite`` (the default, ``sqlite:///…``) and ``postgres`` (``postgresql://…``, psycopg2)."""
