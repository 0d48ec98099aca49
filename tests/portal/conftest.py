import pytest
from django.contrib.auth.models import User


@pytest.fixture
def alice() -> User:
    return User.objects.create_user("alice", "alice@example.com", "pw")
