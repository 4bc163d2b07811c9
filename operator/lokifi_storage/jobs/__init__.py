"""What CronJobs and humans run: backup, restore, verify, vacuum, compress, export."""
