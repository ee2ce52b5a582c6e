"""Business rules. Each function takes the caller's `Principal` and runs in one tenant transaction."""
