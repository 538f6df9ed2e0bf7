import secrets
from pathlib import Path

from django.contrib.auth import authenticate, password_validation
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone
from rest_framework_simplejwt.tokens import RefreshToken

from accounts import selectors
from accounts.models import LoginFailure, User
from videomp3.http import client_address


class InvalidCredentials(Exception):
    pass


class LoginThrottled(Exception):
    def __init__(self, retry_after: int):
        super().__init__(retry_after)
        self.retry_after = retry_after

    @property
    def sentence(self) -> str:
        minutes = max(1, round(self.retry_after / 60))
        return f"Too many failed sign-ins. Try again in about {minutes} minute{'s' if minutes != 1 else ''}."


def normalize_email(email: str) -> str:
    return User.objects.normalize_email((email or "").strip()).lower()


def user_register(*, email: str, password: str) -> User:
    """Create an account; raises ValidationError with field messages a user can act on."""
    email = normalize_email(email)
    candidate = User(email=email)
    try:
        password_validation.validate_password(password, user=candidate)
    except ValidationError as exc:
        raise ValidationError({"password": exc.messages}) from None
    try:
        with transaction.atomic():
            return User.objects.create_user(email=email, password=password)
    except IntegrityError:
        raise ValidationError(
            {"email": ["An account with this email address already exists; sign in instead."]}
        ) from None


def login_failure_record(*, email: str, address: str) -> None:
    now = timezone.now()
    LoginFailure.objects.bulk_create(
        [
            LoginFailure(scope=LoginFailure.Scope.ACCOUNT, key=email, created_at=now),
            LoginFailure(scope=LoginFailure.Scope.ADDRESS, key=address, created_at=now),
        ]
    )
    # Keep the table small: rows older than the window no longer count for anything.
    LoginFailure.objects.filter(created_at__lt=selectors._window_start()).delete()


def user_authenticate(*, request: HttpRequest, email: str, password: str) -> User:
    """Check a sign-in on any login path, throttled per account and per client address."""
    email = normalize_email(email)
    address = client_address(request)
    retry_after = selectors.login_retry_after(email=email, address=address)
    if retry_after is not None:
        raise LoginThrottled(retry_after)
    user = authenticate(request, email=email, password=password) if email and password else None
    if user is None:
        login_failure_record(email=email, address=address)
        raise InvalidCredentials()
    LoginFailure.objects.filter(scope=LoginFailure.Scope.ACCOUNT, key=email).delete()
    return user


def user_lock(*, user) -> None:
    """Lock the user's row until the current transaction ends: serializes per-user quota checks."""
    User.objects.select_for_update().filter(pk=user.pk).values_list("pk", flat=True).first()


def token_pair_for(user: User) -> dict[str, str]:
    refresh = RefreshToken.for_user(user)
    User.objects.filter(pk=user.pk).update(last_login=timezone.now())
    return {"access": str(refresh.access_token), "refresh": str(refresh)}


def access_token_for(user: User) -> str:
    return token_pair_for(user)["access"]


DEMO_EMAIL = "demo@example.com"


def demo_user_ensure(*, credentials_path: Path) -> tuple[str, str]:
    """The embedded mode's demo account: created once with a random password kept beside the data."""
    if credentials_path.exists():
        email, _, password = credentials_path.read_text(encoding="utf-8").strip().partition(":")
        user = User.objects.filter(email=email).first()
        if user is not None and user.check_password(password):
            return email, password
    password = secrets.token_urlsafe(12)
    user = User.objects.filter(email=DEMO_EMAIL).first() or User(email=DEMO_EMAIL)
    user.set_password(password)
    user.is_active = True
    user.save()
    credentials_path.parent.mkdir(parents=True, exist_ok=True)
    credentials_path.write_text(f"{DEMO_EMAIL}:{password}\n", encoding="utf-8")
    credentials_path.chmod(0o600)
    return DEMO_EMAIL, password
