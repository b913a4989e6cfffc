"""Settings of the example: no database of its own, Triplit is the data."""
import os

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-a-secret")
DEBUG = True
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = ["todos.apps.TodosConfig"]
MIDDLEWARE: list = []
ROOT_URLCONF = "todosite.urls"
DATABASES: dict = {}
USE_TZ = True

# `triplit-sync dev` prints the URL and a service token.
TRIPLIT_URL = os.environ.get("TRIPLIT_URL", "http://127.0.0.1:6543")
TRIPLIT_SERVICE_TOKEN = os.environ.get("TRIPLIT_SERVICE_TOKEN", "")
TRIPLIT_DATA_DIR = os.environ.get("TRIPLIT_DATA_DIR")  # None: the user data dir
