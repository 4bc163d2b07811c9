"""The local stack: real PostgreSQL, Redis Cluster, S3 and Kubernetes servers on loopback."""
