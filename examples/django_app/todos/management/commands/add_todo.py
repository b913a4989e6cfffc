from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from todos import triplit_client


class Command(BaseCommand):
    help = "Add a todo through the app's Triplit client and wait until the server has it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("text")
        parser.add_argument("--owner", default="service")

    def handle(self, *args: Any, **options: Any) -> None:
        client = triplit_client.client
        assert client is not None
        todo = client.insert("todos", {"text": options["text"], "owner": options["owner"]})
        client.wait_for_sync(timeout=10)  # a command that returns has its write on the server
        self.stdout.write(f"added {todo['id']}")
