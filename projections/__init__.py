"""The read side: one Projection per read model, its Postgres view, and its queries."""
