"""The only code that talks to Kubernetes, PostgreSQL, Redis and S3, with its own error tree."""
