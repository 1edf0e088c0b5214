"""`ragbot eval`: answer a questions file with any backend and score the answers (see `run`)."""
