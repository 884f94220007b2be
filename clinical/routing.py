from django.urls import path

from clinical.consumers import ImportProgressConsumer

websocket_urlpatterns = [
    path("ws/imports/<int:batch_id>/", ImportProgressConsumer.as_asgi()),
]
