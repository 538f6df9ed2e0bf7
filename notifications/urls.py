from django.urls import path

from notifications import apis

urlpatterns = [
    path("", apis.EndpointListCreateApi.as_view(), name="webhook-list"),
    path("<str:endpoint_id>/", apis.EndpointDetailApi.as_view(), name="webhook-detail"),
    path("<str:endpoint_id>/rotate-secret/", apis.EndpointRotateSecretApi.as_view(), name="webhook-rotate-secret"),
    path("<str:endpoint_id>/deliveries/", apis.DeliveryListApi.as_view(), name="webhook-deliveries"),
    path(
        "<str:endpoint_id>/deliveries/<str:delivery_id>/redeliver/",
        apis.DeliveryRedeliverApi.as_view(),
        name="webhook-redeliver",
    ),
]
