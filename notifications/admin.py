from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from notifications import webhooks
from notifications.models import EmailDelivery, WebhookAttempt, WebhookDelivery, WebhookEndpoint


@admin.register(EmailDelivery)
class EmailDeliveryAdmin(admin.ModelAdmin):
    """The failed emails' state, for operators; the notifier writes it, so it is read-only here."""

    list_display = ("job", "outcome", "state", "attempts", "sent_at", "retry_at", "error")
    list_filter = ("outcome", "state")
    search_fields = ("job__id", "job__owner__email")
    readonly_fields = [field.name for field in EmailDelivery._meta.fields]

    def has_add_permission(self, request):
        return False


class WebhookAttemptInline(admin.TabularInline):
    model = WebhookAttempt
    extra = 0
    can_delete = False
    fields = readonly_fields = (
        "number",
        "started_at",
        "status_code",
        "latency_ms",
        "response_snippet",
        "error",
        "retry_in_seconds",
    )

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    list_display = ("url", "owner", "events", "enabled", "consecutive_failures", "disabled_reason", "created_at")
    list_filter = ("enabled",)
    search_fields = ("url", "owner__email", "description")
    readonly_fields = ("secret", "disabled_at", "consecutive_failures", "failing_since", "created_at")


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    """Every delivery with its attempts; redeliver sends the chosen ones again with their webhook-id."""

    list_display = ("message_id", "event_type", "endpoint", "state", "attempts", "created_at", "finished_at")
    list_filter = ("state", "event_type")
    search_fields = ("message_id", "endpoint__url", "endpoint__owner__email", "job_id")
    readonly_fields = [field.name for field in WebhookDelivery._meta.fields]
    inlines = [WebhookAttemptInline]
    actions = ["redeliver"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Redeliver the selected deliveries (same webhook-id)")
    def redeliver(self, request, queryset):
        done, refused = 0, 0
        for delivery in queryset.select_related("endpoint"):
            try:
                webhooks.delivery_redeliver(delivery=delivery)
                done += 1
            except ValidationError:
                refused += 1
        self.message_user(request, f"{done} queued again.", messages.SUCCESS)
        if refused:
            self.message_user(request, f"{refused} not: their endpoint is disabled; enable it first.", messages.WARNING)
