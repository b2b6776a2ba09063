"""Recording: the ledger (the one writer), experiment records, git, refs and the workspace."""
