"""Storage: the PostgreSQL COPY path for bars, and the Parquet catalog."""
