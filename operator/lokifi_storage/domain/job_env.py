"""The environment variable names shared by the CronJobs the operator writes and the commands
they run.

A CronJob passes credentials and long inputs as environment variables (never as arguments, which
`ps` and the Job's spec show); the builder that writes the variable and the command that reads it
are in different layers and were once spelled apart, so a rename on one side would leave a job
reading an unset variable. Both sides import their names from here.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "AWS_ACCESS_KEY_ID_ENV",
    "AWS_REGION_ENV",
    "AWS_SECRET_ACCESS_KEY_ENV",
    "JOB_IMAGE_ENV",
    "PG_BIN_ENV",
    "PRIMARY_URL_ENV",
    "RESOURCE_ENV",
    "S3_ENDPOINT_ENV",
    "S3_REGION_ENV",
    "TABLES_JSON_ENV",
    "VERIFY_URL_ENV",
]

#: the primary's URL (with its password), from the resource's primary Secret
PRIMARY_URL_ENV: Final = "LOKIFI_PRIMARY_URL"
#: the verify target's URL; the backup command is told this name with --verify-target-env
VERIFY_URL_ENV: Final = "LOKIFI_VERIFY_URL"
#: spec.postgres.tables as JSON, for the partition jobs (no credentials in it)
TABLES_JSON_ENV: Final = "LOKIFI_TABLES_JSON"
#: `<namespace>/<name>` of the resource a CronJob runs for; a command run by hand without it
#: records nothing
RESOURCE_ENV: Final = "LOKIFI_RESOURCE"
#: boto3's own names, so that boto3 finds the keys without us reading them
AWS_ACCESS_KEY_ID_ENV: Final = "AWS_ACCESS_KEY_ID"
AWS_SECRET_ACCESS_KEY_ENV: Final = "AWS_SECRET_ACCESS_KEY"  # noqa: S105 - a name
AWS_REGION_ENV: Final = "AWS_DEFAULT_REGION"
#: what a command run by hand may set instead of --endpoint / --region
S3_ENDPOINT_ENV: Final = "LOKIFI_S3_ENDPOINT"
S3_REGION_ENV: Final = "LOKIFI_S3_REGION"
#: where pg_dump/pg_restore are (the image sets it)
PG_BIN_ENV: Final = "LOKIFI_PG_BIN"
#: the image of the CronJobs, for the operator and `lokifi-storage plan`
JOB_IMAGE_ENV: Final = "LOKIFI_JOB_IMAGE"
