from django.urls import path

from accounts import apis

urlpatterns = [
    path("token/", apis.TokenObtainApi.as_view(), name="token-obtain"),
    path("token/refresh/", apis.TokenRefreshApi.as_view(), name="token-refresh"),
    path("logout/", apis.LogoutApi.as_view(), name="logout"),
    path("me/", apis.MeApi.as_view(), name="me"),
    path("register/", apis.RegisterApi.as_view(), name="register"),
]
