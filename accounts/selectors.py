from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from accounts.models import LoginFailure, User


def login_window_start():
    return timezone.now() - timedelta(seconds=settings.LOGIN_FAILURE_WINDOW_SECONDS)


def login_failure_retry_after(*, scope: str, key: str, limit: int) -> int | None:
    """Seconds until another sign-in may be tried for this key, or None when it is not throttled."""
    recent = (
        LoginFailure.objects.filter(scope=scope, key=key, created_at__gte=login_window_start())
        .order_by("-created_at")
        .values_list("created_at", flat=True)[:limit]
    )
    recent = list(recent)
    if len(recent) < limit:
        return None
    # When the limit-th newest failure leaves the window, the count drops below the limit.
    frees_at = recent[-1] + timedelta(seconds=settings.LOGIN_FAILURE_WINDOW_SECONDS)
    return max(1, int((frees_at - timezone.now()).total_seconds()) + 1)


def login_retry_after(*, email: str, address: str) -> int | None:
    waits = [
        login_failure_retry_after(
            scope=LoginFailure.Scope.ACCOUNT, key=email, limit=settings.LOGIN_FAILURES_PER_ACCOUNT
        ),
        login_failure_retry_after(
            scope=LoginFailure.Scope.ADDRESS, key=address, limit=settings.LOGIN_FAILURES_PER_ADDRESS
        ),
    ]
    waits = [wait for wait in waits if wait is not None]
    return max(waits) if waits else None


def user_get(*, user_id) -> User | None:
    """The user a token names, or None when there is none (deleted, or an id that is not a number)."""
    try:
        return User.objects.filter(pk=user_id).first()
    except (TypeError, ValueError):
        return None
