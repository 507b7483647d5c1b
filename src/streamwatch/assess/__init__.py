"""Assessment: a stream's concurrent anomalies -> one typed, graded finding (DOMAIN.md)."""
