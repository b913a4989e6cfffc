from django.urls import path

from todos import views

urlpatterns = [
    path("todos/", views.open_todos),
    path("mine/", views.my_todos),
]
