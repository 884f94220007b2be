from django.urls import path

from inference.consumers import JobStreamConsumer, WorklistConsumer

websocket_urlpatterns = [
    path("ws/jobs/<int:job_id>/", JobStreamConsumer.as_asgi()),
    path("ws/worklist/", WorklistConsumer.as_asgi()),
]
