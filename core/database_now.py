"""The database server's clock, for leases and claims."""

from datetime import timedelta

from django.db.models import DateTimeField, ExpressionWrapper
from django.db.models.functions import Now


class DatabaseNow(Now):
    """The database server's clock, in UTC. Leases and claims are set and judged by this one clock, so
    converters whose host clocks disagree, or a paused VM whose clock jumps, cannot misjudge a lease."""

    def as_mysql(self, compiler, connection, **extra_context):
        # CURRENT_TIMESTAMP is in the session's time zone; Django stores UTC.
        return self.as_sql(compiler, connection, template="UTC_TIMESTAMP(6)", **extra_context)


def database_now_plus(seconds: float):
    return ExpressionWrapper(DatabaseNow() + timedelta(seconds=seconds), output_field=DateTimeField())
