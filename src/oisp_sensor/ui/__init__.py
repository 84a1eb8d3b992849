"""What people look at: the in-memory event store behind the web dashboard and the terminal UI
(`store`), its HTTP API (`api`), offline viewing (`show`, `replay`)."""
