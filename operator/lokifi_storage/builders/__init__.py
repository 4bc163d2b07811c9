"""Pure builders of Kubernetes objects (CronJobs, Secrets, labels, names). No I/O."""
