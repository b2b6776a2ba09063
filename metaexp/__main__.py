from metaexp.cli import entry

entry()
