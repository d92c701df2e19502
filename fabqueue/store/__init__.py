"""The truth: database models and queries, migrations, the content-addressed file store."""
