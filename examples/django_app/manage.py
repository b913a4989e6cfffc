#!/usr/bin/env python
"""A small Django project on Triplit (examples/django_app): a view and a management command share
one TriplitClient per process, created in ``TodosConfig.ready()``.

    cd examples/django_app
    TRIPLIT_URL=http://127.0.0.1:6543 TRIPLIT_SERVICE_TOKEN=... python manage.py add_todo "buy milk"
    TRIPLIT_URL=... TRIPLIT_SERVICE_TOKEN=... python manage.py runserver   # GET /todos/, GET /mine/
"""
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "todosite.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
