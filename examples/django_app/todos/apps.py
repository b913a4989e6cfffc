from django.apps import AppConfig


class TodosConfig(AppConfig):
    name = "todos"

    def ready(self) -> None:
        # One client per process (runserver's autoreloader runs two: each takes a slot of the name).
        from django.conf import settings

        from triplit_sync import DEMO_SCHEMA, TriplitClient

        from . import triplit_client

        triplit_client.client = TriplitClient(settings.TRIPLIT_URL, token=settings.TRIPLIT_SERVICE_TOKEN,
                                              schema=DEMO_SCHEMA, name="django-todos",
                                              data_dir=settings.TRIPLIT_DATA_DIR)
        triplit_client.as_user = triplit_client.make_user_client(settings.TRIPLIT_URL, DEMO_SCHEMA)
