"""Name rules of the spec: SQL identifiers, Kubernetes names, S3 bucket names.

Each rule exists twice, from one definition here: as a pydantic validator with a message that
says how to fix the value, and as the OpenAPI `pattern`/`maxLength` (plus a CEL rule where a
regular expression cannot say it) that the API server checks before the object is stored.

SQL identifiers are deliberately stricter than PostgreSQL: lower case ASCII letters, digits and
underscores only. Every identifier is quoted when the operator builds SQL, so a mixed-case name
would silently become a different, case-sensitive object than the one an admin typing unquoted
SQL sees. Refusing such names up front is kinder than that surprise.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

IDENTIFIER_MAX: Final = 63  # NAMEDATALEN - 1: PostgreSQL truncates longer names silently.
_IDENT: Final = r"[a-z_][a-z0-9_]{0,62}"

IDENTIFIER_PATTERN: Final = rf"^{_IDENT}$"
TABLE_PATTERN: Final = rf"^({_IDENT}\.)?{_IDENT}$"
INDEX_COLUMN_PATTERN: Final = (
    rf"^{_IDENT}( (ASC|DESC|asc|desc))?( (NULLS|nulls) (FIRST|LAST|first|last))?$"
)
DNS_LABEL_PATTERN: Final = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN_PATTERN: Final = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
SECRET_KEY_PATTERN: Final = r"^[-._a-zA-Z0-9]+$"  # noqa: S105 - a pattern, not a password
BUCKET_PATTERN: Final = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"

_IP_ADDRESS: Final = r"^[0-9]+[.][0-9]+[.][0-9]+[.][0-9]+$"  # [.]: no escapes inside CEL
# Prefixes and suffixes S3 reserves for its own naming schemes (access points, directory
# buckets, table buckets); CreateBucket refuses them.
BUCKET_RESERVED_PREFIXES: Final = ("xn--", "sthree-", "amzn-s3-demo-")
BUCKET_RESERVED_SUFFIXES: Final = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")

_IDENTIFIER_FIX: Final = (
    "use lower-case letters, digits and underscores, starting with a letter or underscore, "
    "at most 63 characters (e.g. ai_messages)"
)


def _fail(kind: str, message: str, **context: Any) -> PydanticCustomError:
    # Formatted here (pydantic's own templates know no `!r`); no context means no re-format.
    return PydanticCustomError(kind, message.format(**context))


def check_identifier(value: str) -> str:
    """A schema, column or index name: `^[a-z_][a-z0-9_]{0,62}$`."""
    if not re.fullmatch(IDENTIFIER_PATTERN, value):
        raise _fail("identifier", "{value!r} is not a valid name: " + _IDENTIFIER_FIX, value=value)
    return value


def check_table_name(value: str) -> str:
    """`table` or `schema.table`, each part an identifier."""
    if not re.fullmatch(TABLE_PATTERN, value):
        raise _fail(
            "table_name",
            "{value!r} is not a valid table name: write table or schema.table, each part "
            + _IDENTIFIER_FIX,
            value=value,
        )
    return value


def check_index_column(value: str) -> str:
    """An index key: a column, optionally followed by ASC/DESC and NULLS FIRST/LAST."""
    if not re.fullmatch(INDEX_COLUMN_PATTERN, value):
        raise _fail(
            "index_column",
            "{value!r} is not a valid index column: write a column name, optionally followed by "
            '" ASC" or " DESC" and " NULLS FIRST" or " NULLS LAST" (e.g. "created_at DESC"); '
            "column names " + _IDENTIFIER_FIX,
            value=value,
        )
    return value


def index_column_name(key: str) -> str:
    """The column of an index key: `created_at DESC NULLS LAST` -> `created_at`."""
    return key.split(" ", 1)[0]


def split_table_name(name: str, default_schema: str = "public") -> tuple[str, str]:
    """`schema.table` -> (schema, table); a bare table is in `default_schema`."""
    schema, dot, table = name.rpartition(".")
    return (schema if dot else default_schema), table


def check_dns_label(value: str) -> str:
    """A Kubernetes DNS label (RFC 1123): used where the name ends up in object names."""
    if len(value) > 63 or not re.fullmatch(DNS_LABEL_PATTERN, value):
        raise _fail(
            "dns_label",
            "{value!r} is not a valid name: use at most 63 lower-case letters, digits and '-', "
            "starting and ending with a letter or digit (e.g. replica-1)",
            value=value,
        )
    return value


def check_dns_subdomain(value: str) -> str:
    """A Kubernetes object name such as a Secret's (RFC 1123 subdomain)."""
    if len(value) > 253 or not re.fullmatch(DNS_SUBDOMAIN_PATTERN, value):
        raise _fail(
            "dns_subdomain",
            "{value!r} is not a valid Kubernetes object name: use at most 253 lower-case "
            "letters, digits, '-' and '.', starting and ending with a letter or digit",
            value=value,
        )
    return value


def check_secret_key(value: str) -> str:
    """A key in a Secret's data."""
    if len(value) > 253 or not re.fullmatch(SECRET_KEY_PATTERN, value):
        raise _fail(
            "secret_key",
            "{value!r} is not a valid Secret key: use at most 253 letters, digits, '-', '_' "
            "and '.'",
            value=value,
        )
    return value


def bucket_name_problem(value: str) -> str | None:
    """Why `value` is not a valid S3 general-purpose bucket name, or None when it is."""
    if not re.fullmatch(BUCKET_PATTERN, value):
        return (
            "use 3 to 63 lower-case letters, digits, '.' and '-', starting and ending with a "
            "letter or digit"
        )
    if ".." in value:
        return "two adjacent periods are not allowed"
    if re.fullmatch(_IP_ADDRESS, value):
        return "a bucket name must not look like an IP address"
    for prefix in BUCKET_RESERVED_PREFIXES:
        if value.startswith(prefix):
            return f"the prefix {prefix!r} is reserved by S3"
    for suffix in BUCKET_RESERVED_SUFFIXES:
        if value.endswith(suffix):
            return f"the suffix {suffix!r} is reserved by S3"
    return None


def check_bucket_name(value: str) -> str:
    """An S3 bucket name by S3's general-purpose bucket naming rules."""
    problem = bucket_name_problem(value)
    if problem is not None:
        raise _fail(
            "bucket_name",
            "{value!r} is not a valid S3 bucket name: {problem}",
            value=value,
            problem=problem,
        )
    return value


def _cel(rule: str, message: str) -> dict[str, str]:
    return {"rule": rule, "message": message}


# The annotated types the models use. `json_schema_extra` carries the same rule to the CRD.
Identifier = Annotated[
    str,
    AfterValidator(check_identifier),
    Field(json_schema_extra={"pattern": IDENTIFIER_PATTERN, "maxLength": IDENTIFIER_MAX}),
]
TableName = Annotated[
    str,
    AfterValidator(check_table_name),
    Field(json_schema_extra={"pattern": TABLE_PATTERN, "maxLength": 2 * IDENTIFIER_MAX + 1}),
]
IndexColumn = Annotated[
    str,
    AfterValidator(check_index_column),
    Field(json_schema_extra={"pattern": INDEX_COLUMN_PATTERN, "maxLength": IDENTIFIER_MAX + 17}),
]
DnsLabel = Annotated[
    str,
    AfterValidator(check_dns_label),
    Field(json_schema_extra={"pattern": DNS_LABEL_PATTERN, "maxLength": 63}),
]
DnsSubdomain = Annotated[
    str,
    AfterValidator(check_dns_subdomain),
    Field(json_schema_extra={"pattern": DNS_SUBDOMAIN_PATTERN, "maxLength": 253}),
]
SecretKey = Annotated[
    str,
    AfterValidator(check_secret_key),
    Field(json_schema_extra={"pattern": SECRET_KEY_PATTERN, "maxLength": 253}),
]
BucketName = Annotated[
    str,
    AfterValidator(check_bucket_name),
    Field(
        json_schema_extra={
            "pattern": BUCKET_PATTERN,
            "maxLength": 63,
            "x-kubernetes-validations": [
                _cel("!self.contains('..')", "an S3 bucket name must not contain '..'"),
                _cel(
                    f"!self.matches('{_IP_ADDRESS}')",
                    "an S3 bucket name must not look like an IP address",
                ),
                _cel(
                    "!("
                    + " || ".join(f"self.startsWith('{p}')" for p in BUCKET_RESERVED_PREFIXES)
                    + " || "
                    + " || ".join(f"self.endsWith('{s}')" for s in BUCKET_RESERVED_SUFFIXES)
                    + ")",
                    "this S3 bucket name prefix or suffix is reserved by S3 "
                    "(xn--, sthree-, amzn-s3-demo-, -s3alias, --ol-s3, .mrap, --x-s3, --table-s3)",
                ),
            ],
        }
    ),
]
