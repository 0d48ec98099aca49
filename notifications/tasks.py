from celery import shared_task

from notifications.services import send_queued


@shared_task(name="notifications.send_queued_emails", ignore_result=True)
def send_queued_emails() -> int:
    return send_queued()
