from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

CHANGELISTS = [
    "admin:ordering_order_changelist",
    "admin:shipping_shipment_changelist",
    "admin:notifications_sentemail_changelist",
    "admin:mediator_outboxmessage_changelist",
    "admin:mediator_inboxrecord_changelist",
    "admin:mediator_poisonedtask_changelist",
]


@pytest.fixture
def staff_client(client: Client) -> Client:
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw-root-123")
    client.force_login(user)
    return client


@pytest.mark.django_db
@pytest.mark.parametrize("name", CHANGELISTS)
def test_admin_changelists_render_for_staff(staff_client: Client, name: str) -> None:
    response = staff_client.get(reverse(name), {"q": "x"})
    assert response.status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("name", CHANGELISTS)
def test_admin_redirects_anonymous_users_to_login(client: Client, name: str) -> None:
    response = client.get(reverse(name))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


@pytest.mark.django_db
def test_admin_lists_demo_orders(staff_client: Client) -> None:
    call_command(
        "seed_demo", "--orders", "2", "--admin-password", "Plinth-Marmot-Quarry-42",
        "--customer-password", "Velvet-Anchor-Tundra-17", stdout=StringIO(),
    )  # fmt: skip
    response = staff_client.get(reverse("admin:ordering_order_changelist"))
    assert response.status_code == 200
    assert response.content.count(b'class="field-total"') == 2
