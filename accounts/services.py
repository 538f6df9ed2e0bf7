import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.contrib.auth import authenticate, password_validation
from django.core.exceptions import ValidationError
from django.db import IntegrityError, OperationalError, transaction
from django.http import HttpRequest
from django.utils import timezone
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.tokens import RefreshToken
from rest_framework_simplejwt.utils import get_md5_hash_password

from accounts import selectors
from accounts.models import THROTTLE_KEY_LENGTH, LoginFailure, LoginThrottleKey, User
from core.client_address import client_address


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


def user_set_email_notifications(*, user: User, enabled: bool) -> User:
    """Turn the job emails ("ready", "failed") on or off for this user."""
    User.objects.filter(pk=user.pk).update(email_notifications=enabled)
    user.email_notifications = enabled
    return user


@dataclass(frozen=True)
class LoginAttempt:
    """A sign-in in flight: already counted as a failure for its account and its address."""

    email: str
    counted_at: datetime
    failure_ids: tuple[int, int]


def _throttle_key(value: str) -> str:
    # Longer than any account's email address: such an attempt can only fail, so sharing a key costs nothing.
    return value[:THROTTLE_KEY_LENGTH]


def _throttle_keys_lock(keys: list[tuple[str, str]]) -> list[int] | None:
    """Lock each key's row in the given order (inside a transaction); None as soon as one has no row."""
    locked = []
    for scope, key in keys:
        # An equality lookup on the unique index: InnoDB locks that index entry, then the row; nothing else.
        row_ids = list(
            LoginThrottleKey.objects.select_for_update().filter(scope=scope, key=key).values_list("pk", flat=True)
        )
        if not row_ids:
            return None
        locked.extend(row_ids)
    return locked


def _login_attempt_count(keys: list[tuple[str, str]]) -> LoginAttempt | None:
    """One try at counting an attempt; None when a key has no row to lock yet."""
    with transaction.atomic():
        locked = _throttle_keys_lock(keys)
        if locked is None:
            return None
        # The first plain read of this transaction, after the locks: it sees every attempt counted before.
        retry_after = selectors.login_retry_after(email=keys[0][1], address=keys[1][1])
        if retry_after is not None:
            raise LoginThrottled(retry_after)
        now = timezone.now()
        LoginThrottleKey.objects.filter(pk__in=locked).update(last_attempt_at=now)
        failure_ids = tuple(LoginFailure.objects.create(scope=scope, key=key, created_at=now).pk for scope, key in keys)
    return LoginAttempt(email=keys[0][1], counted_at=now, failure_ids=failure_ids)


_MYSQL_DEADLOCK = 1213
_COUNT_TRIES = 10


def _is_deadlock(exc: OperationalError) -> bool:
    return bool(exc.args) and exc.args[0] == _MYSQL_DEADLOCK


def login_attempt_begin(*, email: str, address: str) -> LoginAttempt:
    """Count a sign-in as failed before its password is checked, or raise LoginThrottled.

    Checking the count and adding to it are one step under a lock on the account's and the address's
    rows, so parallel guesses on any process take turns: with a limit of 10, only 10 of them get as far as
    the password check, whatever their number. A right password then takes its attempt back.
    """
    # Always account first, then address: two attempts never wait for each other in a circle.
    keys = [(LoginFailure.Scope.ACCOUNT, _throttle_key(email)), (LoginFailure.Scope.ADDRESS, _throttle_key(address))]
    for _ in range(_COUNT_TRIES):
        try:
            attempt = _login_attempt_count(keys)
            if attempt is not None:
                return attempt
            # A key's first attempt, or the purge removed its row: add the rows outside any transaction (see
            # LoginThrottleKey), then lock again.
            LoginThrottleKey.objects.bulk_create(
                [LoginThrottleKey(scope=scope, key=key) for scope, key in keys], ignore_conflicts=True
            )
        except OperationalError as exc:
            # Two inserts of a key whose row the purge has just deleted can deadlock in InnoDB; it undid one
            # of them whole (statement or transaction), so trying again counts the attempt once.
            if not _is_deadlock(exc):
                raise
    raise OperationalError(f"The sign-in throttle could not count an attempt in {_COUNT_TRIES} tries.")


def login_attempt_succeeded(*, attempt: LoginAttempt) -> None:
    """The right password: this attempt no longer counts, and neither do the account's earlier failures."""
    earlier = LoginFailure.objects.filter(
        scope=LoginFailure.Scope.ACCOUNT, key=attempt.email, created_at__lt=attempt.counted_at
    ).values_list("pk", flat=True)
    # By primary key: record locks only, so this never blocks an attempt counting beside it.
    LoginFailure.objects.filter(pk__in=[*earlier, *attempt.failure_ids]).delete()


def login_throttle_purge(*, batch: int = 500) -> None:
    """Forget what no longer counts: failures and keys older than the window, a batch at a time."""
    window_start = selectors.login_window_start()
    stale_failures = list(LoginFailure.objects.filter(created_at__lt=window_start).values_list("pk", flat=True)[:batch])
    # By primary key alone: record locks only, never a range of an index that attempts are inserting into.
    LoginFailure.objects.filter(pk__in=stale_failures).delete()
    stale_keys = list(
        LoginThrottleKey.objects.filter(last_attempt_at__lt=window_start).values_list("scope", "key")[:10]
    )
    for scope, key in stale_keys:
        # One row per statement, found by (scope, key) as an attempt finds it: InnoDB locks the unique index
        # entry, then the row, in the order the attempts do; a row used again meanwhile is kept. Best effort:
        # the next failure purges too.
        try:
            LoginThrottleKey.objects.filter(scope=scope, key=key, last_attempt_at__lt=window_start).delete()
        except OperationalError as exc:
            if not _is_deadlock(exc):
                raise


def user_authenticate(*, request: HttpRequest, email: str, password: str) -> User:
    """Check a sign-in on any login path, throttled per account and per client address."""
    email = normalize_email(email)
    attempt = login_attempt_begin(email=email, address=client_address(request))
    user = authenticate(request, email=email, password=password) if email and password else None
    if user is None:
        login_throttle_purge()
        raise InvalidCredentials()
    login_attempt_succeeded(attempt=attempt)
    return user


def user_lock(*, user) -> None:
    """Lock the user's row until the current transaction ends: serializes per-user quota checks."""
    User.objects.select_for_update().filter(pk=user.pk).values_list("pk", flat=True).first()


# --- tokens ----------------------------------------------------------------------------------------------

# When the user signed in with a password (OpenID Connect's name for it); every rotation carries it on, so a
# chain of refresh tokens ends JWT_REFRESH_MAX_LIFETIME after the sign-in however often it is refreshed.
AUTH_TIME_CLAIM = "auth_time"
# A fingerprint of the password hash (simplejwt's CHECK_REVOKE_TOKEN claim; a new salt on every change):
# any new password, however it was set, refuses the tokens issued before it, access tokens included.
PASSWORD_CLAIM = jwt_settings.REVOKE_TOKEN_CLAIM


class TokenRefused(Exception):
    def __init__(self, sentence: str, code: str):
        super().__init__(sentence)
        self.sentence = sentence
        self.code = code


def _password_fingerprint(user: User) -> str:
    return get_md5_hash_password(user.password)


def _token_pair_issue(refresh: RefreshToken) -> dict[str, str]:
    """Sign the pair, neither token outliving the sign-in, and list the refresh token as outstanding."""
    sign_in_ends = refresh[AUTH_TIME_CLAIM] + int(settings.JWT_REFRESH_MAX_LIFETIME.total_seconds())
    refresh["exp"] = min(refresh["exp"], sign_in_ends)
    access = refresh.access_token
    access["exp"] = min(access["exp"], sign_in_ends)
    refresh.outstand()
    return {"access": str(access), "refresh": str(refresh)}


def token_pair_for(user: User) -> dict[str, str]:
    """A new sign-in's tokens (the password was just checked)."""
    refresh = RefreshToken()
    refresh[jwt_settings.USER_ID_CLAIM] = str(user.pk)
    refresh[PASSWORD_CLAIM] = _password_fingerprint(user)
    refresh[AUTH_TIME_CLAIM] = refresh["iat"]
    pair = _token_pair_issue(refresh)
    User.objects.filter(pk=user.pk).update(last_login=timezone.now())
    return pair


def access_token_for(user: User) -> str:
    return token_pair_for(user)["access"]


USED_OR_EXPIRED = "This refresh token is invalid, expired or already used; sign in again."


def token_pair_refresh(*, refresh: str) -> dict[str, str]:
    """Rotate a refresh token: a new pair, the used token blacklisted; raises TokenRefused with a sentence."""
    try:
        token = RefreshToken(refresh)  # signature, expiry, type and blacklist
    except TokenError:
        raise TokenRefused(USED_OR_EXPIRED, "token_not_valid") from None
    user = selectors.user_get(user_id=token.get(jwt_settings.USER_ID_CLAIM))
    if user is None or not user.is_active:
        raise TokenRefused(
            "This account is deactivated or no longer exists; ask this server's administrator.", "user_inactive"
        )
    if AUTH_TIME_CLAIM not in token or PASSWORD_CLAIM not in token:
        # Issued before these claims existed: nothing says whether the password changed since.
        raise TokenRefused(
            "This refresh token is from an older version of this server; sign in again.", "token_outdated"
        )
    if token[PASSWORD_CLAIM] != _password_fingerprint(user):
        raise TokenRefused(
            "The password of this account was changed after this token was issued; sign in again with the new password.",
            "password_changed",
        )
    if token[AUTH_TIME_CLAIM] + settings.JWT_REFRESH_MAX_LIFETIME.total_seconds() <= time.time():
        raise TokenRefused(
            "This sign-in has lasted as long as this server keeps one; sign in again.", "sign_in_expired"
        )
    _, first_use = token.blacklist()
    if not first_use:
        # Another request rotated the same token a moment ago: only one of them gets the next token.
        raise TokenRefused(USED_OR_EXPIRED, "token_not_valid")
    token.set_jti()
    token.set_exp()
    token.set_iat()
    return _token_pair_issue(token)


def token_revoke(*, refresh: str) -> None:
    """Sign out: the refresh token can no longer be used; raises TokenRefused when it was not valid."""
    try:
        RefreshToken(refresh).blacklist()
    except TokenError:
        raise TokenRefused(USED_OR_EXPIRED, "token_not_valid") from None


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
