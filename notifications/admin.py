from django.contrib import admin

from notifications.models import EmailDelivery


@admin.register(EmailDelivery)
class EmailDeliveryAdmin(admin.ModelAdmin):
    """The failed emails' state, for operators; the notifier writes it, so it is read-only here."""

    list_display = ("job", "outcome", "state", "attempts", "sent_at", "retry_at", "error")
    list_filter = ("outcome", "state")
    search_fields = ("job__id", "job__owner__email")
    readonly_fields = [field.name for field in EmailDelivery._meta.fields]

    def has_add_permission(self, request):
        return False
