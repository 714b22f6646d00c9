"""Company knowledge: connectors -> parse -> chunk -> index -> search, filtered by each user's access."""
