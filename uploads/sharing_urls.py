"""Share links and the podcast feed: public pages and files (the token is the credential) and the owner's pages."""

from django.urls import path

from uploads import sharing_views as views

urlpatterns = [
    path("s/<str:token>", views.share_page, name="share-page"),
    path("s/<str:token>/mp3", views.share_mp3, name="share-mp3"),
    path("feeds/<str:token>.xml", views.feed_document, name="feed-document"),
    path("feeds/<uuid:job_id>/<str:item_token>.mp3", views.feed_item_mp3, name="feed-item-mp3"),
    path("feeds/<uuid:job_id>/<str:item_token>.jpg", views.feed_item_cover, name="feed-item-cover"),
    path("feeds/<uuid:job_id>/<str:item_token>.json", views.feed_item_chapters, name="feed-item-chapters"),
    path("feed/", views.feed_page, name="feed-page"),
    path("jobs/<str:job_id>/shares/", views.share_create, name="job-share-create"),
    path("jobs/<str:job_id>/shares/<str:share_id>/revoke/", views.share_revoke, name="job-share-revoke"),
]
