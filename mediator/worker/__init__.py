"""The worker: the Celery task built for each handler, the outcome of a run
(done, duplicate, retry, defer, poison) and the consumer that keeps the
messages Celery would drop."""
