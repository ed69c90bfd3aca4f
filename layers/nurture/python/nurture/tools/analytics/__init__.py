"""History analytics: `nurture export` (the tables to JSON Lines or Parquet), the SQL over them (DuckDB here, Athena
in AWS) and `nurture calibrate` (intent weights and thresholds fitted to sales outcomes). docs/analytics.md."""
